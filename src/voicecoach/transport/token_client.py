"""Get an ephemeral key from a voicecoach token server instead of the Realtime API (``--token-url``).

The client then needs no API key: ``POST <token_url>`` with ``Authorization: Bearer <shared secret>`` returns
``{"value": "ek_…", "expires_at": …}``, which is used exactly like a key from
:func:`~voicecoach.transport.signaling.create_client_secret`. Failures map onto the same error tree as signaling
(401/403 → :class:`~voicecoach.errors.AuthError`, 429 → ``RateLimitError``, 5xx → ``ServerUnavailable``, …).
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from ..errors import ConfigError, ServerUnavailable, SignalingTimeout, Unreachable
from ..redact import redact_text
from .signaling import ClientSecret, raise_for_status

log = logging.getLogger(__name__)


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
    host = parts.netloc
    headers = {"Authorization": f"Bearer {secret.get_secret_value()}"} if secret is not None else {}
    try:
        async with asyncio.timeout(timeout_s):
            async with http.post(token_url, headers=headers) as resp:
                status, body = resp.status, await resp.text(errors="replace")
    except TimeoutError:
        raise SignalingTimeout(
            f"no answer from the token server {host} within {timeout_s:g} s; is it running? (or raise --http-timeout)"
        ) from None
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or exc.os_error
        raise Unreachable(f"cannot connect to the token server {host} ({reason}); check --token-url") from exc
    except aiohttp.ClientError as exc:
        said = redact_text(str(exc)) or type(exc).__name__
        raise Unreachable(f"the request to the token server {host} failed: {said}") from exc
    raise_for_status(
        status,
        body,
        "ephemeral key request to the token server",
        auth_hint="check that VOICECOACH_TOKEN_SECRET matches the token server's",
    )
    try:
        data = json.loads(body)
        value = data["value"]
        if not isinstance(value, str) or not value:
            raise TypeError("value is not a string")
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerUnavailable(
            f"the reply from {host} has no usable 'value' ({type(exc).__name__}); is --token-url a voicecoach "
            "token server?",
            status=status,
        ) from None
    expires_at = data.get("expires_at")
    log.debug("got an ephemeral key from the token server, expiring at %s", expires_at)
    return ClientSecret(SecretStr(value), expires_at if isinstance(expires_at, int) else None)
