"""How a link gets the key it connects with. Explicit arguments only: no Settings object comes in here.

There are three ways, chosen once per run by :func:`key_source` (synchronous, so a run with unusable credentials
fails at start with one line and sends nothing):

- :class:`ApiKey`: the standard API key (``OPENAI_API_KEY``). A WebRTC link trades it for a short-lived client
  secret (``POST {base_url}/realtime/client_secrets``) so the key itself never rides the call; a WebSocket link
  may send it directly (:func:`resolve_api_key`). A loopback ``base_url`` (``voicecoach serve``) needs no key.
- :class:`TokenServer`: a voicecoach token server mints the client secret with a key this machine never holds;
  the client only has the shared secret (``VOICECOACH_TOKEN_SECRET``). The session config is then the token
  server's own: it decides what its keys may do.

:func:`obtain_client_secret` returns the ephemeral key for one link, whichever the source.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from ..errors import AuthError
from ..protocol import client_events as ce
from .signaling import ClientSecret, create_client_secret
from .token_client import check_token_url, fetch_from_token_server, require_token_secret

# A local server (voicecoach serve) accepts any key; do not make people invent one.
LOCAL_KEY_FOR_LOOPBACK = "sk-local-no-key-needed"


@dataclass(frozen=True)
class ApiKey:
    """Use the standard API key against ``base_url`` (already resolved: never empty)."""

    base_url: str
    key: SecretStr


@dataclass(frozen=True)
class TokenServer:
    """Ask the token server at ``url`` (checked to be http(s)) with the shared ``secret`` (never empty)."""

    url: str
    secret: SecretStr


KeySource = ApiKey | TokenServer


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``); brackets of an IPv6 literal are allowed."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(api_key: SecretStr | None, base_url: str) -> SecretStr:
    """The key to send to ``base_url``: ``api_key`` if given, a placeholder for a loopback server, else AuthError."""
    if api_key is not None and api_key.get_secret_value():
        return api_key
    if is_loopback_host(urlsplit(base_url).hostname or ""):
        return SecretStr(LOCAL_KEY_FOR_LOOPBACK)
    raise AuthError("no API key: set OPENAI_API_KEY (or api_key in the config file), or use --token-url")


def key_source(
    *, base_url: str, api_key: SecretStr | None, token_url: str | None, token_secret: SecretStr | None
) -> KeySource:
    """Choose where keys come from; a token URL wins over an API key. Sends nothing.

    Raises :class:`~voicecoach.errors.ConfigError` for a token URL that is not http(s) or has no
    ``VOICECOACH_TOKEN_SECRET`` beside it (exit 2), and :class:`~voicecoach.errors.AuthError` when there is
    neither a token URL nor an API key and ``base_url`` is not loopback.
    """
    if token_url:
        return TokenServer(check_token_url(token_url), require_token_secret(token_secret))
    return ApiKey(base_url, resolve_api_key(api_key, base_url))


async def obtain_client_secret(
    http: aiohttp.ClientSession,
    source: KeySource,
    *,
    session: ce.SessionConfig | ce.TranscriptionSessionConfig,
    ttl_seconds: int,
    timeout_s: float,
    on_retry: Callable[[str], None] | None = None,
) -> ClientSecret:
    """An ephemeral key for one link.

    ``session`` (with its model) and ``ttl_seconds`` shape the key minted with an :class:`ApiKey`; a
    :class:`TokenServer` mints with its own, of the same session type (a transcription-only session's key for
    the other side of the call). ``timeout_s`` bounds each HTTP exchange; ``on_retry`` gets a
    one-line notice before each wait on a token server's 429. Raises a
    :class:`~voicecoach.errors.SignalingError` subclass with a one-line message.
    """
    if isinstance(source, TokenServer):
        return await fetch_from_token_server(
            http, source.url, source.secret, timeout_s, on_retry=on_retry, session_type=session.type
        )
    request = ce.ClientSecretRequest(expires_after=ce.ExpiresAfter(seconds=ttl_seconds), session=session)
    return await create_client_secret(http, source.base_url, source.key, request, timeout_s)
