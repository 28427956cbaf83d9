"""Opens the links of one run: which transport, which key, and the session configuration they start with.

The runner asks for a link and gets one (or a ConnectError); the choices behind it live here:

- **The transport.** ``webrtc`` or ``websocket`` as asked; ``auto`` tries WebRTC and, when it is not up
  within ``webrtc_deadline_seconds`` (key, SDP answer, ICE, DTLS, the data channel and ``session.updated``, all
  counted from the start of the attempt) or ICE fails, opens the WebSocket with the same configuration. A run
  that fell back stays on the WebSocket for its reconnects (alternating would pay the deadline every time);
  the next run decides afresh.
- **The key.** WebRTC connects with a minted client secret (or the token server's); the WebSocket takes the
  standard key directly, or the token server's ephemeral key when there is no standard key here.
- **The first event.** Every new link sends ``session.update`` and waits for the answer.

Tests inject a transport factory and a key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
from pydantic import SecretStr

from .audio.base import FrameSource
from .config import Settings
from .errors import TransportError
from .link import Link
from .protocol import client_events as ce
from .session_config import build_session
from .transport.base import TransportFactory
from .transport.choice import credential, key_source_for, transport_factory, websocket_factory
from .transport.credentials import ApiKey, KeySource

log = logging.getLogger(__name__)

Credential = Callable[[], Awaitable[SecretStr]]


@dataclass(frozen=True)
class Opened:
    link: Link
    why: str  # why this transport, when it is not the one asked for ("" otherwise)


class Connector:
    def __init__(
        self,
        settings: Settings,
        *,
        on_sent: Callable[[dict[str, Any]], None],
        on_retry: Callable[[str], None],
        factory: TransportFactory | None = None,
        credential: Credential | None = None,
    ) -> None:
        """Raises a one-line ConfigError/AuthError for unusable credentials (no key, a token URL without its
        secret) at once, before anything is sent or saved."""
        self.settings = settings
        self._on_sent = on_sent
        self._on_retry = on_retry
        self._factory = factory
        self._credential = credential
        self._keys: KeySource | None = None if credential is not None else key_source_for(settings)
        self._fell_back = ""  # why this run went over to the WebSocket, once it has

    async def open(self, http: aiohttp.ClientSession, source: FrameSource) -> Opened:
        """One connected link whose session has answered its ``session.update``."""
        s = self.settings
        if self._factory is not None:  # a test's own transport
            return Opened(await self._open(self._factory, self._injected(), source, s.connect_timeout), "")
        if s.transport == "websocket" or self._fell_back:
            link = await self._open(websocket_factory(http, s), self._ws_key(http), source, s.connect_timeout)
            return Opened(link, self._fell_back)
        webrtc = partial(self._open, transport_factory(http, s), self._rtc_key(http), source)
        if s.transport == "webrtc":
            return Opened(await webrtc(s.connect_timeout), "")
        deadline = min(s.webrtc_deadline_seconds, s.connect_timeout)
        try:
            async with asyncio.timeout(deadline):
                return Opened(await webrtc(deadline), "")
        except (TimeoutError, TransportError) as exc:
            # ICE, DTLS or the channel did not come up: the signature of a network that drops UDP. (HTTP
            # errors are not: the WebSocket goes to the same server, so they are reported as they are.)
            detail = f": {exc}" if isinstance(exc, TransportError) else ""
            self._fell_back = f"WebRTC was not up within {deadline:g} s{detail}; UDP may be blocked here"
            log.debug("falling back to the WebSocket: %s", self._fell_back)
        link = await self._open(websocket_factory(http, s), self._ws_key(http), source, s.connect_timeout)
        return Opened(link, self._fell_back)

    async def _open(self, factory: TransportFactory, key: Credential, source: FrameSource, limit_s: float) -> Link:
        """Connect within ``limit_s``, send the configuration, and wait (as long again) for its answer."""
        update = ce.SessionUpdate(session=build_session(self.settings)).to_wire()
        link = await Link.open(credential=key, factory=factory, source=source, session_update=update, timeout_s=limit_s)
        self._on_sent(update)
        try:
            await link.ready(limit_s)
        except BaseException:
            await link.close()
            raise
        return link

    def _injected(self) -> Credential:
        assert self._credential is not None, "a test that injects a transport injects its key too"
        return self._credential

    def _rtc_key(self, http: aiohttp.ClientSession) -> Credential:
        return self._credential or partial(credential, http, self.settings, self._key_source(), self._on_retry)

    def _ws_key(self, http: aiohttp.ClientSession) -> Credential:
        keys = self._key_source()
        if self._credential is None and isinstance(keys, ApiKey):
            standard = keys.key  # the WebSocket takes the standard key itself: no client secret to mint

            async def direct() -> SecretStr:
                return standard

            return direct
        return self._rtc_key(http)

    def _key_source(self) -> KeySource:
        assert self._keys is not None, "set in __init__ whenever no credential was injected"
        return self._keys
