"""``voicecoach token-server``: mint ephemeral Realtime keys for clients that hold no API key.

``POST /v1/token`` with ``Authorization: Bearer <VOICECOACH_TOKEN_SECRET>`` → the server asks the upstream
``POST {base_url}/realtime/client_secrets`` with the real API key and our session config, and answers
``200 {"value": "ek_…", "expires_at": …}``. Failures are OpenAI-style JSON errors
``{"error": {"message", "type", "code"}}``: 401 for a missing or wrong bearer, 429 (with ``Retry-After``) when a
client address exceeds its token bucket, 502 when the upstream refuses or fails. A JSON body
``{"session_type": "transcription"}`` asks for a key of a transcription-only session (the other side of a call,
issue 13); no body (or ``"realtime"``) is the main link's key; any other body is a 400.

Its settings are the client's (``api_key``, ``base_url``, the session config it mints keys for) plus the
``[token_server]`` table (:class:`~voicecoach.tokenserver_settings.TokenServerSettings`: host, port and the rate
limit per address), read from the config file, the environment and the ``token-server`` flags.

Security contract: the bearer is compared in constant time; the rate limit is taken *before* the bearer is checked,
so guessing the secret is as slow as the limit; nothing secret (bearer, API key, ``ek_`` value) is ever logged or
put in an error body. The server speaks plain HTTP and binds 127.0.0.1 by default: to serve other machines, put it
behind a TLS proxy (then every client shares the proxy's address for the rate limit).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TextIO

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from .config import Settings
from .errors import AuthError, ConfigError, RateLimitError, SignalingError, SignalingTimeout, Unreachable
from .protocol.client_events import ClientSecretRequest, ExpiresAfter
from .redact import redact_text
from .session_config import build_session, build_transcription_session
from .transport.credentials import is_loopback_host
from .transport.signaling import create_client_secret
from .transport.token_client import SECRET_ENV

log = logging.getLogger(__name__)

MIN_SECRET_LENGTH = 16
TOKEN_PATH = "/v1/token"

_HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http", aiohttp.ClientSession)


def token_secret(settings: Settings) -> SecretStr:
    """The shared bearer secret (``VOICECOACH_TOKEN_SECRET``); :class:`ConfigError` if missing or too short."""
    return _checked_secret(settings.token_secret or SecretStr(""))


class TokenBuckets:
    """One token bucket per client address (pure: ``now`` is passed in, in seconds).

    Each address may spend ``burst`` requests at once, refilled at ``rate_per_minute``. At most ``max_keys``
    addresses are remembered (full buckets are forgotten first, then the longest idle), so a flood of addresses
    cannot grow memory without bound.
    """

    def __init__(self, rate_per_minute: float, burst: int, *, max_keys: int = 4096) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ConfigError(
                f"the token server rate limit needs rate > 0 and burst >= 1, got {rate_per_minute}/{burst}"
            )
        self.per_second = rate_per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # address → (tokens, when last updated)

    def take(self, key: str, now: float) -> float:
        """Spend one token for ``key``: 0.0 if allowed, else the seconds until a token will be available."""
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._prune(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.per_second

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= self.max_keys:
            return
        full = [k for k, (t, last) in self._buckets.items() if t + (now - last) * self.per_second >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) > self.max_keys:
            idle = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for key in idle[: len(self._buckets) - self.max_keys]:
                del self._buckets[key]


def create_token_app(
    settings: Settings, secret: SecretStr, *, clock: Callable[[], float] = time.monotonic
) -> web.Application:
    """The token server app, limited by ``settings.token_server``.

    Raises :class:`ConfigError` without an API key or with a short ``secret``.
    """
    if settings.api_key is None or not settings.api_key.get_secret_value():
        raise ConfigError("the token server needs the real API key; set OPENAI_API_KEY where it runs")
    limits = settings.token_server
    buckets = TokenBuckets(limits.rate_per_minute, limits.burst)
    handler = _TokenHandler(settings, _checked_secret(secret), buckets, clock)
    app = web.Application()
    app.cleanup_ctx.append(_http_session)
    app.router.add_post(TOKEN_PATH, handler.handle)
    return app


def run_token_server(settings: Settings) -> int:
    """Serve on ``settings.token_server``'s host and port until SIGINT/SIGTERM. Returns the exit code (0).

    Prints two lines to stdout first: the URL, then the limits. Raises :class:`ConfigError` if
    ``VOICECOACH_TOKEN_SECRET`` or the API key is missing, or the port is taken.
    """
    app = create_token_app(settings, token_secret(settings))
    ts = settings.token_server
    limits = f"rate limit per client address: {ts.rate_per_minute:g} keys/min, burst {ts.burst}"
    return asyncio.run(_serve(app, ts.host, ts.port, sys.stdout, limits))


class _TokenHandler:
    def __init__(
        self, settings: Settings, secret: SecretStr, buckets: TokenBuckets, clock: Callable[[], float]
    ) -> None:
        assert settings.api_key is not None
        self.settings = settings
        self.api_key = settings.api_key
        self.secret = secret.get_secret_value().encode()
        self.buckets = buckets
        self.clock = clock
        self.counts: Counter[str] = Counter()
        # Built once: the session config depends only on the settings. A client asks for the type (the main
        # link's realtime session, or the other side's transcription-only one), never for the config.
        expires = ExpiresAfter(seconds=settings.token_ttl_seconds)
        self.requests = {
            "realtime": ClientSecretRequest(expires_after=expires, session=build_session(settings, with_model=True)),
            "transcription": ClientSecretRequest(expires_after=expires, session=build_transcription_session(settings)),
        }

    async def handle(self, request: web.Request) -> web.Response:
        address = request.remote or "unknown"
        response = await self._answer(request, address)
        self.counts[str(response.status)] += 1
        log.debug("token request from %s: HTTP %s (so far %s)", address, response.status, dict(self.counts))
        return response

    async def _answer(self, request: web.Request, address: str) -> web.Response:
        wait = self.buckets.take(address, self.clock())
        if wait > 0:
            retry = max(1, math.ceil(wait))
            return _error(
                429,
                f"too many token requests from this address; retry in {retry} s",
                "rate_limit_exceeded",
                "rate_limited",
                {"Retry-After": str(retry)},
            )
        if not self._authorized(request.headers.get("Authorization", "")):
            return _error(
                401,
                f"missing or wrong bearer token; send Authorization: Bearer <{SECRET_ENV}>",
                "invalid_request_error",
                "invalid_token_secret",
                {"WWW-Authenticate": 'Bearer realm="voicecoach"'},
            )
        kind = await _session_type(request)
        if kind not in self.requests:
            return _error(
                400,
                'session_type must be "realtime" or "transcription" (or send no body for "realtime")',
                "invalid_request_error",
                "invalid_session_type",
            )
        s = self.settings
        try:
            minted = await create_client_secret(
                request.app[_HTTP], s.base_url, self.api_key, self.requests[kind], s.http_timeout
            )
        except SignalingError as exc:
            # str(exc) is one line and already scrubbed by signaling; scrub again in case that ever changes.
            message = f"the upstream Realtime API did not issue a key: {redact_text(str(exc))}"
            return _error(502, message, "upstream_error", _upstream_code(exc))
        body = {"value": minted.value.get_secret_value(), "expires_at": minted.expires_at}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Bytes, not str: compare_digest refuses non-ASCII str, and a hostile header must not raise.
        return hmac.compare_digest(token.strip().encode(), self.secret)


async def _session_type(request: web.Request) -> str | None:
    """The session type a client asks a key for: ``{"session_type": …}``, or "realtime" without a body.

    None for a body that is not such a JSON object (answered 400).
    """
    body = await request.text()
    if not body.strip():
        return "realtime"
    try:
        data = json.loads(body)
    except ValueError:
        return None
    kind = data.get("session_type", "realtime") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def _checked_secret(secret: SecretStr) -> SecretStr:
    if len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
        state = "is not set" if not secret.get_secret_value() else "is too short"
        raise ConfigError(
            f"{SECRET_ENV} {state}; the token server needs a shared secret of at least {MIN_SECRET_LENGTH} "
            "characters, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return secret


def _error(status: int, message: str, kind: str, code: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": code}}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store", **(headers or {})})


def _upstream_code(exc: SignalingError) -> str:
    for cls, code in (
        (AuthError, "upstream_auth_failed"),
        (RateLimitError, "upstream_rate_limited"),
        (SignalingTimeout, "upstream_timeout"),
        (Unreachable, "upstream_unreachable"),
    ):
        if isinstance(exc, cls):
            return code
    return "upstream_failed"


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as http:
        app[_HTTP] = http
        yield


async def _serve(app: web.Application, host: str, port: int, out: TextIO, limits: str) -> int:
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"the token server cannot listen on {host}:{port}: {exc.strerror or exc}; try another --port"
            ) from exc
        bound_port = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        if not is_loopback_host(host):
            log.warning("the token server speaks plain HTTP on %s; put it behind TLS before exposing it", host)
        print(f"voicecoach token server listening on http://{shown}:{bound_port}{TOKEN_PATH}", file=out, flush=True)
        print(limits, file=out, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        log.debug("token server stopping")
    finally:
        await runner.cleanup()
    return 0
