"""One WebRTC call: the aiortc answerer that drives a :class:`RealtimeSession` through a
:class:`~voicecoach.server.pump.SessionPump` (one inbox, one pump task, outputs in order).

Tasks (all owned by :meth:`Call.run`, cancelled and awaited by :meth:`Call.close`):

* the pump (inbox → session → outputs; it sleeps until the session's next deadline or new input);
  the outbound voice is paced by aiortc pulling :meth:`ResponseAudioTrack.recv`, not by the pump,
* the reader of the client's audio track (decoded Opus → mono 48 kHz → inbox, and the recording),
* the backend's work: one voice-rendering task per audio response, and with a live backend one task per
  turn to transcribe and per reply to generate (all off the event loop's pump).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from ..audio.frames import WIRE_RATE, Pcm, Resampler, downmix, pcm_from_frame, silence
from .audio_track import ResponseAudioTrack
from .backend import Backend
from .fitting import encode, fit_event, max_message_size, size, too_large_error
from .outputs import PlayAudio
from .pump import Message, PumpStep, SessionPump
from .session import RealtimeSession

log = logging.getLogger(__name__)

EVENTS_LABEL = "oai-events"


class OfferError(ValueError):
    """The client's SDP offer cannot be used (becomes HTTP 400)."""


__all__ = ["EVENTS_LABEL", "Call", "OfferError", "PumpStep"]


class Call(SessionPump):
    """A call's WebRTC side plus introspection for tests: ``events_sent``, ``events_received``,
    ``received_audio`` (the last ``record_seconds`` of mono 48 kHz PCM heard) and ``closed``."""

    transport = "webrtc"

    def __init__(
        self,
        call_id: str,
        session: RealtimeSession,
        *,
        ice_servers: list[str],
        backend: Backend,
        record_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(call_id, session, backend=backend, clock=clock)
        self._recording: deque[Pcm] = deque(maxlen=max(1, int(record_seconds * 50)))
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(urls=u) for u in ice_servers]))
        self.track = ResponseAudioTrack(self._on_played)
        self._channel: RTCDataChannel | None = None
        self._remote: MediaStreamTrack | None = None
        self._wake = asyncio.Event()  # the events channel opened, or the connection failed first
        self._remote_ready = asyncio.Event()
        self._pc_close: asyncio.Task[None] | None = None
        self._max_message_size: int | None = None  # the offer's a=max-message-size (None: no limit)
        self._wire()

    @property
    def received_audio(self) -> Pcm:
        return np.concatenate(list(self._recording)) if self._recording else silence(0)

    @property
    def peer_connection(self) -> RTCPeerConnection:
        """The call's aiortc peer connection (for introspection and fault injection; do not close it directly)."""
        return self._pc

    # --- fault-injection hooks (used by faults.py) -----------------------------------------------------------

    def send_raw(self, message: str | bytes) -> bool:
        """Send ``message`` on the events channel as-is, bypassing the session. False if it could not go."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return False
        try:
            channel.send(message)
        except ValueError:  # over the peer's max-message-size
            return False
        return True

    def close_channel(self) -> bool:
        """Close the events data channel only; the call then ends as if the client had closed it."""
        channel = self._channel
        if channel is None or channel.readyState not in ("connecting", "open"):
            return False
        channel.close()
        return True

    # --- setup ----------------------------------------------------------------------------------------------

    def _wire(self) -> None:
        pc = self._pc

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label != EVENTS_LABEL or self._channel is not None:
                log.debug("call %s: ignoring data channel %r", self.id, channel.label)
                return
            self._channel = channel

            @channel.on("message")
            def on_message(message: str | bytes) -> None:
                self._inbox.put_nowait(Message("text", message))

            @channel.on("close")
            def on_close() -> None:
                self._inbox.put_nowait(Message("end", "data channel closed"))

            self._wake.set()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self._remote is None:
                self._remote = track
                self._remote_ready.set()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            log.debug("call %s: peer connection %s", self.id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                self._inbox.put_nowait(Message("end", f"peer connection {pc.connectionState}"))
                self._wake.set()

    async def answer(self, offer_sdp: str) -> str:
        """Apply the offer and return the answer SDP (ICE gathering is complete when this returns)."""
        if "v=0" not in offer_sdp or "m=" not in offer_sdp:
            raise OfferError("the offer is not SDP (no 'v=0' or no media section)")
        self._max_message_size = max_message_size(offer_sdp)
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except (ValueError, KeyError, AttributeError, IndexError, TypeError) as exc:
            raise OfferError(str(exc) or type(exc).__name__) from exc
        audio = [t for t in self._pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise OfferError("the offer has no audio media section")
        audio[0].sender.replaceTrack(self.track)
        audio[0].direction = "sendrecv"
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        return str(self._pc.localDescription.sdp)

    # --- running --------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the call's task (after :meth:`answer`). :meth:`close` ends it."""
        self._runner = asyncio.create_task(self.run(), name=f"call-{self.id}")

    async def run(self) -> None:
        try:
            await self._wake.wait()
            if self._channel is None:
                return
            async with asyncio.TaskGroup() as tasks:
                reader = tasks.create_task(self._read_audio(), name=f"call-{self.id}-audio")
                await self._pump()
                reader.cancel()
        except Exception:  # ending the call is the handling; nobody awaits this task's result
            log.debug("call %s failed", self.id, exc_info=True)
            self.close_reason = self.close_reason or "internal error"
        finally:
            await self._stop_voices()
            await self._shutdown()

    async def close(self, reason: str = "closed by the server") -> None:
        """End the call (idempotent): cancel its tasks, close the peer connection."""
        if not self.close_reason:
            self.close_reason = reason
        runner = self._runner
        if runner is not None and not runner.done():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await self._shutdown()
        await self._pc_closing()  # the owner awaits it, even when the runner was cancelled mid-shutdown

    async def _shutdown(self) -> None:
        if not self.closed:
            self.closed = True
            log.debug("call %s closed: %s", self.id, self.close_reason or "ended")
        self.track.stop()
        # Shielded: aiortc may already be closing the connection in its own task, and cancelling a waiter of
        # pc.close() would cancel aiortc's internal "closed" future and make that task fail.
        await asyncio.shield(self._pc_closing())

    def _pc_closing(self) -> asyncio.Task[None]:
        if self._pc_close is None:
            self._pc_close = asyncio.create_task(self._pc.close(), name=f"call-{self.id}-pc-close")
        return self._pc_close

    # --- the transport's side of the pump --------------------------------------------------------------------

    def _play(self, output: PlayAudio) -> None:
        self.track.enqueue(output.response_id, output.pcm)

    def _clear_audio(self) -> None:
        self.track.clear()

    async def _before_close(self) -> None:
        await self._drain_channel()

    async def _send(self, event: dict[str, Any]) -> None:
        """Send one server event; split (deltas) or replaced by an ``error`` when over the max-message-size."""
        limit = self._max_message_size
        wire = fit_event(event, limit, self.session.ids)
        if wire is None:
            assert limit is not None  # without a limit every event fits
            length = size(encode(event))
            log.warning(
                "call %s: a %s event of %d bytes is over the client's max-message-size of %d bytes; "
                "sent an error event instead",
                self.id,
                event.get("type"),
                length,
                limit,
            )
            wire = fit_event(too_large_error(event, length, limit, self.session.ids), limit, self.session.ids) or []
        channel = self._channel
        for sent, text in wire:
            self.events_sent.append(sent)
            if channel is not None and channel.readyState == "open":
                try:
                    channel.send(text)
                except ValueError:  # aiortc's own size check disagreed with ours: say so, never drop silently
                    log.warning("call %s: the data channel refused a %s event", self.id, sent.get("type"))

    async def _drain_channel(self) -> None:
        """Let queued events (e.g. the final ``error``) leave before the connection closes."""
        channel = self._channel
        if channel is None or channel.readyState != "open" or channel.bufferedAmount <= 0:
            return
        drained = asyncio.Event()
        channel.on("bufferedamountlow", drained.set)  # aiortc fires it when the amount falls to the threshold (0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await drained.wait()

    def _on_played(self, response_id: str, played_ms: int, finished: bool) -> None:
        self._inbox.put_nowait(Message("played", (response_id, played_ms, finished)))

    async def _read_audio(self) -> None:
        """Drain the client's audio track: mono 48 kHz into the session and the recording."""
        await self._remote_ready.wait()
        assert self._remote is not None
        resampler: Resampler | None = None
        while True:
            try:
                frame = await self._remote.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            pcm = downmix(pcm_from_frame(frame))
            if frame.sample_rate != WIRE_RATE:
                if resampler is None or resampler.in_rate != frame.sample_rate:
                    resampler = Resampler(frame.sample_rate, 1, WIRE_RATE, 1)
                pcm = resampler.process(pcm)
            self._recording.append(pcm)
            self._inbox.put_nowait(Message("audio", pcm))
