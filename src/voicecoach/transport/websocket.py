"""The WebSocket transport: the Realtime API's events as JSON text frames, audio as base64 PCM16 inside them.

One :class:`WebSocketTransport` is one aiohttp WebSocket to ``{base_url}/realtime?model=M`` (``ws://`` for
http, ``wss://`` for https) with ``Authorization: Bearer <key>`` and no ``OpenAI-Beta`` header (the GA server
refuses it, realtime-protocol.md §8). It is the transport for networks that block UDP (next-wave.md §6), and
it translates so that the coach cannot tell it from WebRTC:

* microphone: the same :class:`~voicecoach.audio.tracks.MicTrack` as WebRTC (gate, mute, wall-clock pacing of
  files), resampled 48 → 24 kHz mono PCM16 and sent as ``input_audio_buffer.append`` every ``APPEND_MS``;
* coach audio: ``response.output_audio.delta`` (and the beta ``response.audio.delta``) is decoded and fed to
  the player's ring in order with the events, and passed on to the coach **without** its ``delta`` (the coach
  needs the ids, not megabytes of base64 in memory and in the events file);
* ``output_audio_buffer.clear`` (WebRTC/SIP only) is never put on the wire; ``session.update`` gets the
  24 kHz PCM formats this transport speaks;
* a dead link (no frame and no pong for ``DEAD_LINK_S``) closes the transport, so the normal reconnect runs.

It implements :class:`voicecoach.transport.base.Transport`; the call order is documented there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from pydantic import SecretStr

from ..audio.base import FrameSource
from ..audio.frames import WIRE_RATE, Pcm, Resampler, pcm_from_frame
from ..audio.tracks import MicTrack
from ..errors import AuthError, ServerUnavailable, SignalingTimeout, TransportError, Unreachable
from ..redact import redact_text
from .base import AudioOut, until_closed
from .websocket_wire import (
    AUTH_CLOSE_CODE,
    WS_RATE,
    auth_message,
    decode_pcm,
    error_of,
    realtime_url,
    session_refused,
    upgrade_refused,
    with_pcm_formats,
)

__all__ = ["WS_RATE", "PushAudioOut", "WebSocketTransport", "auth_message", "realtime_url"]

log = logging.getLogger(__name__)

# 40 ms per append: half the per-event cost of 20 ms (JSON, a frame, a syscall) for 20 ms of extra latency,
# far below the server VAD's 500 ms silence window. 40 ms of 24 kHz PCM16 is 1920 bytes, 2560 in base64.
APPEND_MS = 40
# A link that delivers nothing for this long is dead (issue 12): ICE consent would take 30 s to say so.
DEAD_LINK_S = 5.0
# aiohttp pings after `heartbeat` s without a received frame and gives up when no pong follows within half of
# that again, so the link is declared dead 1.5 x heartbeat after the last frame. Its timers fire a little late
# (the loop's scheduling), so they aim a tenth before the promise: within DEAD_LINK_S, not at it.
DEAD_LINK_AIM = 0.9
HEARTBEAT_PER_DEAD_LINK = 1 / 1.5
# A server event may be big (a long audio delta); the API's own limit for client events is 15 MiB.
MAX_MESSAGE = 16 << 20
MAX_SEND = 15 << 20
CLOSE_TIMEOUT_S = 1.0  # close() waits this long for the server's close frame (a frozen peer never sends one)
AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
NOT_ON_WEBSOCKET = frozenset({"output_audio_buffer.clear"})  # WebRTC/SIP only: the server would reject it


@runtime_checkable
class PushAudioOut(AudioOut, Protocol):
    """A player that also takes pushed PCM (:meth:`voicecoach.audio.tracks.Player.feed`)."""

    def feed(self, pcm: Pcm, rate: int, response_id: str | None = None) -> None: ...


class _UntilClosed(MediaStreamTrack):
    """A track with no frames that ends when the connection does: ``Player.run`` serves its sink meanwhile."""

    kind = "audio"

    def __init__(self, closed: asyncio.Event) -> None:
        super().__init__()
        self._closed = closed

    async def recv(self) -> av.AudioFrame:
        await self._closed.wait()
        raise MediaStreamError


class WebSocketTransport:
    name = "websocket"

    def __init__(
        self,
        source: FrameSource,
        http: aiohttp.ClientSession,
        url: str,
        key: SecretStr,
        *,
        dead_link_s: float = DEAD_LINK_S,
        append_ms: int = APPEND_MS,
    ) -> None:
        self.uplink = MicTrack(source)
        self.url = url
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.timings: dict[str, float] = {}
        self.bytes_sent = 0  # text sent, events and audio: for bandwidth figures
        self.bytes_received = 0
        self._http = http
        self._key = key
        self._dead_link_s = dead_link_s
        self._append_bytes = WS_RATE * append_ms // 1000 * 2
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._player: PushAudioOut | None = None
        self._unplayed: list[tuple[Pcm, str | None]] = []  # deltas handled before play() named the player
        self._closing = False

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    # --- connect ------------------------------------------------------------------------------------------

    async def connect(self, timeout_s: float) -> None:
        """Upgrade, and wait for the server's first event (``session.created``), within ``timeout_s``.

        Waiting for it is what lets a refused key fail here, with the same :class:`AuthError` whether the
        server answers the upgrade with HTTP 401 or upgrades, sends ``invalid_api_key`` and closes with 3000.
        """
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                ws = await self._upgrade()
                upgraded = time.monotonic()
                await self._first_event(ws)
        except TimeoutError:
            raise SignalingTimeout(
                f"the WebSocket to {self.host} did not open within {timeout_s:g} s; check that the server is "
                "running and reachable, or raise connect_timeout"
            ) from None
        self.timings = {
            "ws_upgrade_ms": (upgraded - started) * 1000,
            "first_event_ms": (time.monotonic() - upgraded) * 1000,
        }
        self._tasks = [
            asyncio.create_task(self._read(ws), name="ws-read"),
            asyncio.create_task(self._write(ws), name="ws-write"),
            asyncio.create_task(self._send_mic(), name="ws-mic"),
        ]
        log.debug("WebSocket open: %s", self.timings)

    async def _upgrade(self) -> aiohttp.ClientWebSocketResponse:
        headers = {"Authorization": f"Bearer {self._key.get_secret_value()}"}
        try:
            ws = await self._http.ws_connect(
                self.url,
                headers=headers,
                heartbeat=self._dead_link_s * DEAD_LINK_AIM * HEARTBEAT_PER_DEAD_LINK,
                max_msg_size=MAX_MESSAGE,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise upgrade_refused(exc.status, self.url) from exc
        except aiohttp.ClientConnectorDNSError as exc:
            raise Unreachable(f"cannot resolve {self.host!r} ({exc.os_error}); check --base-url and your DNS") from exc
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or exc.os_error
            raise Unreachable(f"cannot connect to {self.host} ({reason}); check --base-url and the network") from exc
        except aiohttp.ClientError as exc:
            # aiohttp's text names the URL and the failure, never the request's headers (the key).
            detail = redact_text(str(exc)) or type(exc).__name__
            raise Unreachable(f"the WebSocket upgrade to {self.host} failed: {detail}") from exc
        self._ws = ws
        return ws

    async def _first_event(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read until the first event; an ``error`` followed by a close is the server refusing the session."""
        msg = await ws.receive()
        while msg.type is aiohttp.WSMsgType.BINARY:  # only text frames carry events
            msg = await ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            self.bytes_received += len(msg.data)
            error = error_of(msg.data)
            if error is None:
                self._inbox.put_nowait(msg.data)
                return
            # OpenAI closes right after a refusing error; a server that goes on has sent an ordinary error.
            after: aiohttp.WSMessage | None = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    after = await ws.receive()
            if after is not None and after.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raise session_refused(error, ws.close_code, self.host)
            self._inbox.put_nowait(msg.data)
            if after is not None and after.type is aiohttp.WSMsgType.TEXT:
                self._inbox.put_nowait(after.data)
            return
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            if ws.close_code == AUTH_CLOSE_CODE:
                raise AuthError(auth_message(self.host), status=401)
            raise ServerUnavailable(
                f"{self.host} closed the WebSocket before its first event (close code {ws.close_code}); "
                "is --base-url a Realtime API?"
            )
        if msg.type is aiohttp.WSMsgType.ERROR:
            raise TransportError(f"the WebSocket to {self.host} failed right after opening: {msg.data}")

    # --- the connection's tasks ---------------------------------------------------------------------------

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.bytes_received += len(msg.data)
                self._inbox.put_nowait(msg.data)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                # Events are text; a binary frame is still data: the runner reports it as malformed and goes on.
                self.bytes_received += len(msg.data)
                self._inbox.put_nowait(msg.data)
            elif msg.type is aiohttp.WSMsgType.ERROR:
                if isinstance(msg.data, aiohttp.ServerTimeoutError):
                    self._mark_closed(f"no data from the server for {self._dead_link_s:g} s")
                else:
                    self._mark_closed(f"WebSocket error: {redact_text(str(msg.data))}")
                return
            else:  # CLOSE, CLOSING, CLOSED
                code = ws.close_code
                self._mark_closed(f"the server closed the WebSocket (code {code})" if code else "WebSocket closed")
                return

    async def _write(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The one writer: events and audio leave in the order they were queued."""
        while True:
            text = await self._outbox.get()
            try:
                await ws.send_str(text)
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
                self._mark_closed(f"sending failed: {redact_text(str(exc)) or type(exc).__name__}")
                return
            self.bytes_sent += len(text)

    async def _send_mic(self) -> None:
        """MicTrack frames (paced, gated, muted as on WebRTC) → 24 kHz PCM16 → ``input_audio_buffer.append``."""
        mic = self.uplink
        resampler = Resampler(WIRE_RATE, 1, WS_RATE, 1)
        pending = bytearray()
        while True:
            try:
                frame = await mic.recv()
            except MediaStreamError:
                return
            if not mic.gate_open:
                continue  # nothing reaches the server before session.updated
            pcm = resampler.process(pcm_from_frame(frame)[:, 0])
            pending += pcm.astype("<i2").tobytes()
            if len(pending) >= self._append_bytes:
                audio = base64.b64encode(pending).decode("ascii")
                pending.clear()
                self._outbox.put_nowait(f'{{"type":"input_audio_buffer.append","audio":"{audio}"}}')

    def _mark_closed(self, reason: str) -> None:
        if not self.closed.is_set():
            self.close_reason = reason if not self._closing else "closed by us"
            log.debug("WebSocket closed: %s", self.close_reason)
            self.closed.set()

    # --- the Transport protocol ---------------------------------------------------------------------------

    def send(self, event: dict[str, Any]) -> str:
        """Queue one client event as JSON text; returns the text (empty for an event WebSocket does not carry)."""
        kind = event.get("type")
        if kind in NOT_ON_WEBSOCKET:
            log.debug("not sending %s: WebRTC/SIP only, the player's own flush has silenced the audio", kind)
            return ""
        if self._ws is None or self.closed.is_set():
            raise TransportError(f"cannot send {kind}: the WebSocket is not open")
        if kind == "session.update":
            event = with_pcm_formats(event)
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        if len(text) > MAX_SEND:
            raise TransportError(f"{kind} is {len(text)} bytes, over the API's limit of {MAX_SEND} per event")
        self._outbox.put_nowait(text)
        return text

    async def messages(self) -> AsyncGenerator[str | bytes, None]:
        """Server events in arrival order; audio deltas go to the player here, in order with the events the
        coach has handled before them (its ``mark_response``), and come out without their ``delta``."""
        async for raw in until_closed(self._inbox, self.closed):
            yield self._take(raw) if isinstance(raw, str) else raw

    def _take(self, text: str) -> str:
        if "audio.delta" not in text:  # the cheap test first: most events are not audio
            return text
        try:
            event = json.loads(text)
        except ValueError:
            return text  # the runner reports it as malformed
        if not isinstance(event, dict) or event.get("type") not in AUDIO_DELTAS:
            return text
        payload = event.pop("delta", None)
        response_id = event.get("response_id")
        pcm = decode_pcm(payload)
        # How much audio this delta carried, for the coach's map of transcript to played time (coach/played.py).
        event["voicecoach_audio_ms"] = round(pcm.size * 1000 / WS_RATE, 3) if pcm is not None else 0
        if pcm is not None and pcm.size:
            rid = response_id if isinstance(response_id, str) else None
            if self._player is None:
                self._unplayed.append((pcm, rid))
            else:
                self._player.feed(pcm, WS_RATE, rid)
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False)

    async def play(self, player: AudioOut) -> None:
        """Serve ``player``'s sink until the connection ends; the audio itself arrives through :meth:`messages`."""
        if not isinstance(player, PushAudioOut):
            raise TypeError("the WebSocket transport needs a player with feed() (voicecoach.audio.tracks.Player)")
        self._player = player
        for pcm, rid in self._unplayed:
            player.feed(pcm, WS_RATE, rid)
        self._unplayed.clear()
        await player.run(_UntilClosed(self.closed))

    async def close(self) -> None:
        self.uplink.stop()
        self._closing = True
        self._mark_closed("closed by us")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S * 2):
                    await ws.close()
