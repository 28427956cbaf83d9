"""Get an ephemeral key from a voicecoach token server instead of the Realtime API (``--token-url``).

The client then needs no API key: ``POST <token_url>`` with ``Authorization: Bearer <shared secret>`` returns
``{"value": "ek_…", "expires_at": …}``, which is used exactly like a key from
:func:`~voicecoach.transport.signaling.create_client_secret`. Failures map onto the same error tree as signaling
(401/403 → :class:`~voicecoach.errors.AuthError`, 429 → ``RateLimitError``, 5xx → ``ServerUnavailable``, …).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from ..errors import ConfigError
from .signaling import ClientSecret, parse_client_secret, post, raise_for_status


async def fetch_from_token_server(
    http: aiohttp.ClientSession,
    token_url: str,
    secret: SecretStr | None,
    # A setting (--http-timeout) for this one exchange, as in signaling; callers should not wrap it themselves.
    timeout_s: float,
) -> ClientSecret:
    """Ask the token server at ``token_url`` for an ephemeral key; ``secret`` is its shared bearer (if any).

    Raises a :class:`~voicecoach.errors.SignalingError` subclass with a one-line message on any failure, and
    :class:`~voicecoach.errors.ConfigError` if ``token_url`` is not an http(s) URL.
    """
    parts = urlsplit(token_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--token-url must be an http(s) URL, e.g. http://127.0.0.1:8766/v1/token; got {token_url!r}")
    headers = {"Authorization": f"Bearer {secret.get_secret_value()}"} if secret is not None else {}
    what = "ephemeral key request to the token server"
    status, body, _ = await post(http, token_url, what, timeout_s, flag="--token-url", headers=headers)
    raise_for_status(status, body, what, auth_hint="check that VOICECOACH_TOKEN_SECRET matches the token server's")
    return parse_client_secret(body, status, f"{parts.netloc} (is --token-url a voicecoach token server?)")
