"""The WebRTC transport: the only module that speaks aiortc (for the client).

One :class:`WebRtcTransport` is one peer connection with one sendrecv audio transceiver (our microphone
track out, the model's voice in) and the client-created ``oai-events`` data channel that carries JSON events
both ways. Signaling is injected as a callable (offer SDP → answer SDP), so this module does no HTTP.

It implements :class:`voicecoach.transport.base.Transport`; the call order is documented there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from ..audio.base import FrameSource
from ..audio.tracks import MicTrack
from ..errors import TransportError
from .base import AudioOut, until_closed

log = logging.getLogger(__name__)

EVENTS_LABEL = "oai-events"
# The data channel's message size limit when the answer does not advertise one (RFC 8841 default, which aiortc
# applies); a larger send raises in aiortc, so we check first and say which event was too big.
DEFAULT_MAX_MESSAGE = 65_536

# A link that delivers nothing for this long is dead (issue 12); ICE consent would take 30 s to say so. The
# watchdog counts every packet the DTLS transport receives (RTP, RTCP, the data channel), since aiortc peers
# send RTCP reports every 0.5-1.5 s even when no audio flows. Checked DEAD_LINK_CHECKS times per bound.
DEAD_LINK_S = 5.0
DEAD_LINK_CHECKS = 10

Exchange = Callable[[str], Awaitable[str]]


@dataclass
class ConnectTimings:
    """Monotonic timestamps of the connect phases, for latency figures."""

    started: float = 0.0
    offer_ready: float = 0.0  # ICE gathering is done inside setLocalDescription
    answer_received: float = 0.0
    channel_open: float = 0.0


class WebRtcTransport:
    name = "webrtc"

    def __init__(
        self,
        source: FrameSource,
        exchange: Exchange,
        *,
        ice_servers: list[str] | None = None,
        dead_link_s: float = DEAD_LINK_S,
    ) -> None:
        servers = [RTCIceServer(urls=url) for url in (ice_servers or [])]
        # iceServers=[] matters: with None aiortc adds a public STUN server, a 5 s stall when it is unreachable.
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.uplink = MicTrack(source)
        self._exchange = exchange
        self._channel: RTCDataChannel | None = None
        self._open = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._remote: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self._t = ConnectTimings()
        self.timings: dict[str, float] = {}
        self._closing = False
        self._dead_link_s = dead_link_s
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    async def connect(self, timeout_s: float) -> None:
        """Offer, exchange, and wait until the data channel is open. Raises TransportError on timeout/failure.

        Errors raised by the exchange (signaling) propagate unchanged.
        """
        t = self._t
        t.started = time.monotonic()
        pc = self._pc
        pc.addTransceiver(self.uplink, direction="sendrecv")
        channel = pc.createDataChannel(EVENTS_LABEL)
        self._channel = channel
        self._wire(pc, channel)

        await pc.setLocalDescription(await pc.createOffer())
        t.offer_ready = time.monotonic()
        answer = await self._exchange(pc.localDescription.sdp)
        t.answer_received = time.monotonic()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except (ValueError, AttributeError, KeyError) as exc:
            raise TransportError(f"the server's SDP answer is unusable: {exc}") from exc
        try:
            async with asyncio.timeout(timeout_s):
                opened = asyncio.ensure_future(self._open.wait())
                failed = asyncio.ensure_future(self.closed.wait())
                try:
                    await asyncio.wait({opened, failed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    opened.cancel()
                    failed.cancel()
                    await asyncio.gather(opened, failed, return_exceptions=True)
        except TimeoutError as exc:
            raise TransportError(
                f"the WebRTC connection did not come up within {timeout_s:g} s (ICE state "
                f"{pc.iceConnectionState}); check the network, or set ice_servers to a reachable STUN server"
            ) from exc
        if not self._open.is_set():
            raise TransportError(f"the WebRTC connection failed while connecting ({self.close_reason})")
        t.channel_open = time.monotonic()
        self.timings = {
            "ice_gathering_ms": (t.offer_ready - t.started) * 1000,
            "sdp_post_ms": (t.answer_received - t.offer_ready) * 1000,
            "dtls_sctp_ms": (t.channel_open - t.answer_received) * 1000,
        }
        log.debug("data channel open: %s", self.timings)
        self._watchdog = asyncio.create_task(self._watch(), name="webrtc-watchdog")

    async def _watch(self) -> None:
        """Close the transport when no packet at all has come from the peer for ``dead_link_s``."""
        interval = self._dead_link_s / DEAD_LINK_CHECKS
        seen, since = -1, time.monotonic()
        while not self.closed.is_set():
            await asyncio.sleep(interval)
            report = await self._pc.getStats()
            count = sum(int(s.packetsReceived) for s in report.values() if s.type == "transport")
            now = time.monotonic()
            if count != seen:
                # The packet came at some point since the last check: count from then, so that the link is
                # declared dead at most dead_link_s after its last packet (never a check interval later).
                seen, since = count, now - interval
            elif now - since >= self._dead_link_s:
                self._mark_closed(f"no RTP and no RTCP from the peer for {self._dead_link_s:g} s")
                return

    def _wire(self, pc: RTCPeerConnection, channel: RTCDataChannel) -> None:
        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and not self._remote.done():
                self._remote.set_result(track)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            log.debug("peer connection state: %s", pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                self._mark_closed(f"peer connection {pc.connectionState}")

        @channel.on("open")
        def on_open() -> None:
            self._open.set()

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            self._inbox.put_nowait(message)

        @channel.on("close")
        def on_close() -> None:
            self._mark_closed("data channel closed")

    def _mark_closed(self, reason: str) -> None:
        if not self.closed.is_set():
            self.close_reason = reason if not self._closing else "closed by us"
            self.closed.set()

    def messages(self) -> AsyncGenerator[str | bytes, None]:
        """Data-channel messages in arrival order; ends once the connection is closed and the inbox is empty."""
        return until_closed(self._inbox, self.closed)

    async def play(self, player: AudioOut) -> None:
        """Feed the model's audio track (it arrives with the answer) to ``player`` until the track ends."""
        await player.run(await self._remote)

    def send(self, event: dict[str, Any]) -> str:
        """Send one client event as JSON text. Returns the text sent. Raises TransportError if it cannot go."""
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        channel = self._channel
        if channel is None or channel.readyState != "open":
            raise TransportError(f"cannot send {event.get('type')}: the data channel is not open")
        size = len(text.encode())
        if size > DEFAULT_MAX_MESSAGE:
            raise TransportError(
                f"{event.get('type')} is {size} bytes, over the data channel limit of {DEFAULT_MAX_MESSAGE}"
            )
        channel.send(text)
        return text

    async def close(self) -> None:
        self.uplink.stop()
        self._closing = True
        self._mark_closed("closed by us")
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        if not self._remote.done():
            self._remote.cancel()
        # Shielded: a second close() awaits aiortc's internal "closed" future, and cancelling that await would
        # cancel the future itself, making aiortc's own close task fail with InvalidStateError.
        await asyncio.shield(self._pc.close())
