"""Get an ephemeral key from a voicecoach token server instead of the Realtime API (``--token-url``).

The client then needs no API key: ``POST <token_url>`` with ``Authorization: Bearer <shared secret>`` returns
``{"value": "ek_…", "expires_at": …}``, which is used exactly like a key from
:func:`~voicecoach.transport.signaling.create_client_secret`. Failures map onto the same error tree as signaling
(401/403 → :class:`~voicecoach.errors.AuthError`, 5xx → ``ServerUnavailable``, …), with two differences:

- a 429 is the token server's own per-address limit, not OpenAI's quota: it is retried after the ``Retry-After``
  the server sent, at most :data:`RETRY_TRIES` tries in all and never a wait longer than
  :data:`RETRY_MAX_WAIT_S` (a longer one fails at once: waiting a minute inside "connecting…" helps no one);
- the shared secret is checked before anything is sent: without it the answer can only be a 401.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from ..errors import ConfigError, RateLimitError
from ..redact import redact_text
from .signaling import ClientSecret, Reply, parse_client_secret, post, raise_for_status, server_said

log = logging.getLogger(__name__)

SECRET_ENV = "VOICECOACH_TOKEN_SECRET"
SessionType = Literal["realtime", "transcription"]  # what a minted key may open
RETRY_TRIES = 3  # requests in all, the first included
RETRY_MAX_WAIT_S = 10.0  # the longest Retry-After we wait out; the server's default limit asks for 6 s
_RAISE_LIMITS = "or raise its limits (voicecoach token-server --rate-per-minute / --burst)"


def check_token_url(token_url: str) -> str:
    """``token_url`` if it is an http(s) URL, else :class:`ConfigError`."""
    parts = urlsplit(token_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"--token-url must be an http(s) URL, e.g. http://127.0.0.1:8766/v1/token; got {redact_text(token_url)!r}"
        )
    return token_url


def require_token_secret(secret: SecretStr | None) -> SecretStr:
    """The shared secret, or :class:`ConfigError` when it is missing (the token server would answer 401)."""
    if secret is None or not secret.get_secret_value():
        raise ConfigError(
            f"--token-url is set but {SECRET_ENV} is not; set it to the shared secret the token server was started with"
        )
    return secret


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date; ``now`` is Unix time).

    None when there is no usable header. Fractions are accepted although RFC 9110 only has whole seconds.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - now) if when.tzinfo is not None else None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


async def fetch_from_token_server(
    http: aiohttp.ClientSession,
    token_url: str,
    secret: SecretStr | None,
    # A setting (http_timeout) for each exchange, as in signaling; callers should not wrap it themselves.
    timeout_s: float,
    *,
    tries: int = RETRY_TRIES,
    max_wait_s: float = RETRY_MAX_WAIT_S,
    on_retry: Callable[[str], None] | None = None,
    session_type: SessionType = "realtime",
) -> ClientSecret:
    """Ask the token server at ``token_url`` for an ephemeral key; ``secret`` is its shared bearer.

    ``session_type`` ``"transcription"`` asks for a key of a transcription-only session (the other side of the
    call): the request then carries ``{"session_type": "transcription"}``; a realtime key is asked with no body,
    as before, so older token servers go on working for the main link.

    A 429 is retried as the module docstring says; ``on_retry`` gets a one-line notice before each wait.
    Raises :class:`~voicecoach.errors.ConfigError` (nothing sent) if ``token_url`` is not an http(s) URL or
    ``secret`` is missing, else a :class:`~voicecoach.errors.SignalingError` subclass with a one-line message.
    """
    host = urlsplit(check_token_url(token_url)).netloc
    headers = {"Authorization": f"Bearer {require_token_secret(secret).get_secret_value()}"}
    what = "ephemeral key request to the token server"
    body: dict[str, Any] = {} if session_type == "realtime" else {"json": {"session_type": session_type}}
    for attempt in range(1, max(1, tries) + 1):
        reply = await post(http, token_url, what, timeout_s, flag="--token-url", headers=headers, **body)
        if reply.status != 429:
            break
        wait = retry_after_seconds(reply.headers.get("retry-after"), time.time())
        if attempt >= tries or wait is None or wait > max_wait_s:
            raise _rate_limited(reply, host, attempt, wait, max_wait_s)
        notice = (
            f"the token server at {host} is rate limiting (HTTP 429); retrying in {wait:g} s ({attempt + 1}/{tries})"
        )
        log.info("%s", notice)
        if on_retry is not None:
            on_retry(notice)
        await asyncio.sleep(wait)
    raise_for_status(reply.status, reply.body, what, auth_hint=f"check that {SECRET_ENV} matches the token server's")
    return parse_client_secret(reply.body, reply.status, f"{host} (is --token-url a voicecoach token server?)")


def _rate_limited(reply: Reply, host: str, attempt: int, wait: float | None, max_wait_s: float) -> RateLimitError:
    said = server_said(reply.body)
    if wait is not None and wait > max_wait_s:
        message = (
            f"the token server at {host} is rate limiting (HTTP 429){said}; it asks to wait {wait:g} s, longer than "
            f"the {max_wait_s:g} s voicecoach waits: run again later, {_RAISE_LIMITS}"
        )
    elif attempt > 1:
        message = (
            f"the token server at {host} still refused after {attempt} tries (HTTP 429){said}; run again later, "
            f"{_RAISE_LIMITS}"
        )
    else:
        message = f"the token server at {host} is rate limiting (HTTP 429){said}; run again later, {_RAISE_LIMITS}"
    return RateLimitError(message, status=429)
