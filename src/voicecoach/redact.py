"""Keep secrets out of everything we print, log or write.

API keys (``sk-…``), ephemeral keys (``ek_…``) and bearer headers must never reach output, logs, the events
file or session files. Values under secret-looking keys are replaced wholesale; free text is scrubbed by
pattern, which also catches a key the server quotes back in an error message.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

# OpenAI keys: sk-..., sk-proj-..., rk-...; ephemeral: ek_...; also a bare "Bearer <token>".
_SECRET_RE = re.compile(r"\b(?:sk|rk|ek)[-_][A-Za-z0-9_\-*.]{4,}|(?i:bearer)\s+[A-Za-z0-9_\-*.]{8,}")
_SECRET_KEYS = frozenset({"api_key", "authorization", "client_secret", "value", "secret", "token"})


def redact_text(text: str) -> str:
    return _SECRET_RE.sub(REDACTED, text)


def redact(obj: Any) -> Any:
    """A copy of a JSON-like value with secrets replaced. Strings are scrubbed; secret keys are blanked."""
    if isinstance(obj, dict):
        return {k: (REDACTED if _is_secret_key(k, v) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def _is_secret_key(key: Any, value: Any) -> bool:
    # "value" is the ephemeral key in a client-secret reply, but also an ordinary word elsewhere: blank it
    # only when it holds a string.
    return isinstance(key, str) and key.lower() in _SECRET_KEYS and isinstance(value, str)
