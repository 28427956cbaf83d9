"""The local Realtime server: HTTP signaling, ephemeral keys, and the live calls (WebRTC and WebSocket).

Usage::

    async with RealtimeServer(ServerConfig()) as server:
        base_url = server.base_url          # http://127.0.0.1:PORT/v1
        ...                                 # server.calls: every call so far (WebRTC Call and
                                            # WebSocketCall alike; .transport tells), for introspection

:func:`serve` runs one until cancelled; :func:`run_serve` is the ``voicecoach serve`` entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import ipaddress
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..errors import ConfigError
from ..transport.ice import pin_host_addresses
from .app import build_app
from .backend import Backend, ScriptedBackend
from .call import Call, OfferError
from .config import ServerConfig
from .defaults import default_session, default_transcription_session, merge_session, session_from_request
from .faults import Faults
from .ids import IdFactory, new_call_id, new_ephemeral_key
from .session import RealtimeSession
from .websocket import WebSocketCall

AnyCall = Call | WebSocketCall

log = logging.getLogger(__name__)

# Closed calls stay inspectable (tests read their events and audio afterwards); beyond this many, the oldest
# closed ones are forgotten.
MAX_KEPT_CLOSED_CALLS = 32


@dataclass
class _Secret:
    expires_at: int
    session: dict[str, Any]


def make_backend(config: ServerConfig) -> Backend:
    """The backend ``config.backend`` names (the local one is imported only when asked for)."""
    if config.backend == "local":
        from .local_backend import LocalBackend

        return LocalBackend(config.local)
    return ScriptedBackend(config.resolved_scenario, voice=config.voice, spans_calls=config.scenario_spans_calls)


class RealtimeServer:
    """``backend``: what it hears, says and sounds like; default: the one ``config.backend`` names. The server
    starts it before listening and closes it after the last call (so a missing model fails at start)."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        backend: Backend | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or ServerConfig()
        self.backend: Backend = backend or make_backend(self.config)
        self.calls: list[AnyCall] = []
        self.faults = Faults(self.config.faults)  # live fault state: tests change it between steps
        self._wall = wall_clock
        self._ids = IdFactory()
        self._secrets: dict[str, _Secret] = {}
        self._live: dict[str, Call] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._backend_started = False
        self._new_call = asyncio.Condition()

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the backend, bind and serve. Raises ConfigError when the address cannot be used or the backend
        misses a part (espeak required but missing, a bad scenario file; the local backend's models, runtimes and
        endpoint: see :mod:`.local_backend`)."""
        await self.backend.start()
        self._backend_started = True
        try:
            await self._listen()
        except BaseException:
            await self._close_backend()
            raise

    async def _listen(self) -> None:
        config = self.config
        host = "127.0.0.1" if config.host == "localhost" else config.host
        if _is_loopback(host):
            # aioice skips loopback interfaces; without pinning, a loopback client would never connect.
            pin_host_addresses([host])
        runner = web.AppRunner(build_app(self), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from exc
        self._runner = runner
        server = site._server  # aiohttp keeps the bound sockets here; the only way to learn an ephemeral port
        sockets = getattr(server, "sockets", None) or []
        self._port = int(sockets[0].getsockname()[1]) if sockets else config.port
        log.debug("local Realtime server listening on %s", self.base_url)

    async def stop(self) -> None:
        """Close every call and stop serving (idempotent)."""
        await asyncio.gather(*(call.close("server stopped") for call in self.calls), return_exceptions=True)
        self._live.clear()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self._close_backend()

    async def _close_backend(self) -> None:
        if self._backend_started:
            self._backend_started = False
            await self.backend.close()

    async def __aenter__(self) -> RealtimeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self._port}/v1"

    async def wait_for_call(self, index: int = 0, seconds: float = 10.0) -> AnyCall:
        """The ``index``-th call (0 = first), waiting up to ``seconds`` for it to be created (TimeoutError)."""
        async with asyncio.timeout(seconds), self._new_call:
            await self._new_call.wait_for(lambda: len(self.calls) > index)
        return self.calls[index]

    # --- used by the HTTP handlers --------------------------------------------------------------------------

    def mint_secret(self, session: dict[str, Any], seconds: int) -> tuple[str, int, dict[str, Any]]:
        """A new ``ek_`` key for a validated session; returns (value, expires_at, effective session)."""
        now = self._wall()
        self._secrets = {k: v for k, v in self._secrets.items() if v.expires_at > now}
        effective = session_from_request(self._ids.session(), session)
        value = new_ephemeral_key()
        expires_at = int(now + seconds)
        self._secrets[value] = _Secret(expires_at, effective)
        return value, expires_at, copy.deepcopy(effective)

    def lookup_secret(self, value: str) -> dict[str, Any] | None:
        secret = self._secrets.get(value)
        if secret is None or secret.expires_at <= self._wall():
            return None
        return copy.deepcopy(secret.session)

    def new_event_id(self) -> str:
        """An ``event_…`` id for an event sent outside any session (a refused WebSocket's ``error``)."""
        return self._ids.event()

    def _core(
        self,
        token_session: dict[str, Any] | None,
        requested: dict[str, Any] | None,
        *,
        model: str | None = None,
        transport: str = "webrtc",
        transcription: bool = False,
    ) -> RealtimeSession:
        """A session core: from the ephemeral key's session, a requested session, or the defaults (``model``;
        with ``transcription``, a transcription-only session's)."""
        session_id = self._ids.session()
        if token_session is not None:
            session = {**token_session, "id": session_id}
            session = merge_session(session, requested) if requested else session
        elif requested is not None:
            session = session_from_request(session_id, requested)
        elif transcription:
            session = default_transcription_session(session_id)
        else:
            session = default_session(session_id, *((model,) if model else ()))
        assert self._backend_started, "start() first"
        options = self.config.session_options()
        if transport == "websocket":
            options = dataclasses.replace(options, transport="websocket")
        return RealtimeSession(
            session,
            now=asyncio.get_running_loop().time(),
            unix_time=self._wall(),
            scenario=self.backend.lines(),
            options=options,
        )

    async def _register(self, call: AnyCall) -> None:
        async with self._new_call:
            self.calls.append(call)
            self._new_call.notify_all()
        closed = [c for c in self.calls if c.closed]
        if len(closed) > MAX_KEPT_CLOSED_CALLS:  # a long-running `serve` must not keep every recording
            drop = set(map(id, closed[: len(closed) - MAX_KEPT_CLOSED_CALLS]))
            self.calls = [c for c in self.calls if id(c) not in drop]
        log.debug("%s call %s started", call.transport, call.id)

    async def open_websocket(
        self,
        ws: web.WebSocketResponse,
        connection: asyncio.BaseTransport | None,
        token_session: dict[str, Any] | None,
        model: str | None,
        *,
        transcription: bool = False,
    ) -> WebSocketCall:
        """Start the session of an accepted WebSocket (``ws`` prepared; auth and model checked by the caller).

        ``token_session``: from an ephemeral key (its session wins, type and model included); otherwise the
        defaults with ``model``, or a transcription-only session's (``transcription``: ?intent=transcription)."""
        config = self.config
        core = self._core(token_session, None, model=model, transport="websocket", transcription=transcription)
        loop = asyncio.get_running_loop()
        call = WebSocketCall(
            new_call_id().replace("rtc_", "ws_", 1),
            core,
            ws,
            connection,
            backend=self.backend,
            record_seconds=config.record_seconds,
            clock=loop.time,
        )
        call.start()
        await self._register(call)
        return call

    async def open_call(
        self, offer_sdp: str, token_session: dict[str, Any] | None, requested: dict[str, Any] | None
    ) -> tuple[Call, str]:
        """Answer an offer. ``token_session``: from the ephemeral key; ``requested``: a multipart session part."""
        config = self.config
        core = self._core(token_session, requested)
        loop = asyncio.get_running_loop()
        call = Call(
            new_call_id(),
            core,
            ice_servers=list(config.ice_servers),
            backend=self.backend,
            record_seconds=config.record_seconds,
            clock=loop.time,
        )
        try:
            answer = await call.answer(offer_sdp)
        except OfferError:
            await call.close("bad offer")
            raise
        self._live[call.id] = call
        call.start()
        await self._register(call)
        return call, answer

    async def hang_up(self, call_id: str) -> bool:
        call = self._live.pop(call_id, None)
        if call is None:
            return False
        await call.close("hung up")
        return True


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(config: ServerConfig, *, ready: Callable[[str], None] | None = None) -> None:
    """Run a server until cancelled; ``ready(base_url)`` is called once it listens."""
    async with RealtimeServer(config) as server:
        if ready is not None:
            ready(server.base_url)
        await asyncio.Event().wait()


def run_serve(config: ServerConfig) -> int:
    """``voicecoach serve``: print where the server listens, run until Ctrl-C or SIGTERM, return 0."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # platforms without signal handlers in the loop
                loop.add_signal_handler(sig, stop.set)
        async with RealtimeServer(config) as server:
            print(f"voicecoach local Realtime server listening on {server.base_url}", flush=True)
            if config.backend != "scripted":
                print(f"backend: {server.backend.describe()}", flush=True)
            await stop.wait()
        return 0

    return asyncio.run(main())
