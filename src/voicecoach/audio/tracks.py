"""The two ends of the audio: :class:`MicTrack` (what we send) and :class:`Player` (what we hear). The Player's
real-time half (the ring a device pulls from, and its account of what played) is :mod:`voicecoach.audio.playout`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from ..errors import AudioError
from .base import FrameSink, FrameSource, PullSink
from .feed import FeedBacklog
from .frames import (
    PREBUFFER_MS,
    PUMP_BLOCK_MS,
    WIRE_FRAME_SAMPLES,
    WIRE_RATE,
    Pcm,
    Resampler,
    frame_from_pcm,
    pcm_from_frame,
    silence,
)
from .playout import Audible, PlayLedger, PlayoutBuffer, Sounding

log = logging.getLogger(__name__)

SILENCE_PEAK = 64  # |sample| at or below this (about -54 dBFS) counts as silence: Opus noise floor, not speech
DRIFT_SLACK_MS = 60  # silent frames are dropped while more than prebuffer + this is queued
HOLD_SILENCE_MS = 200  # after flush(): this much incoming silence means the cancelled response has stopped
HOLD_MAX_S = 1.0  # ... and never discard incoming audio for longer than this after flush()
FEED_BLOCK_MS = 20  # pushed audio enters the ring in blocks of this size, so loud/silent edges are as on a track


class MicTrack(MediaStreamTrack):
    """The microphone as an aiortc audio track: 48 kHz mono s16 frames of 960 samples, pts += 960.

    Until :meth:`open_gate` it sends silence and does not touch the source (no mic audio may reach the server
    before ``session.updated``). While ``muted`` it sends silence with continuous timestamps and keeps draining
    the source, so audio resumes at once on unmute. A non-realtime source is paced by the wall clock. If the
    source fails, the track goes on with silence and keeps the error in ``source_error``.
    """

    kind = "audio"

    def __init__(self, source: FrameSource) -> None:
        super().__init__()
        self._source = source
        self._gate = False
        self._muted = False
        self._start: float | None = None
        self._pts = 0
        self.frames_sent = 0
        self.last_frame_sent_at = 0.0
        self.first_frame_at: float | None = None
        self.first_open_frame_at: float | None = None
        self.source_error: AudioError | None = None

    def open_gate(self) -> None:
        if not self._gate:
            log.debug("mic gate open")
        self._gate = True

    @property
    def gate_open(self) -> bool:
        return self._gate

    @property
    def muted(self) -> bool:
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        if value != self._muted:
            log.debug("mic %s", "muted" if value else "unmuted")
        self._muted = value

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += WIRE_FRAME_SAMPLES
        use_source = self._gate and self.source_error is None
        pcm: Pcm | None = None
        if use_source and self._source.realtime:
            pcm = await self._read()
            # Re-anchor the clock so a later switch to clock pacing (source failure) continues from here.
            self._start = time.monotonic() - self._pts / WIRE_RATE
        else:
            delay = self._start + self._pts / WIRE_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if use_source:
                pcm = await self._read()
        if pcm is None or self._muted:
            pcm = silence(WIRE_FRAME_SAMPLES)
        frame = frame_from_pcm(pcm, WIRE_RATE, self._pts)
        self.frames_sent += 1
        self.last_frame_sent_at = time.monotonic()
        # The start of each stream's audio on the monotonic clock (the frame's first sample, a frame ago): a
        # server's audio_start_ms counts from the first frame it got (WebRTC: any; the WebSocket: the first one
        # with the gate open). The coach places turns of two links on one clock with these.
        if self.first_frame_at is None:
            self.first_frame_at = self.last_frame_sent_at - WIRE_FRAME_SAMPLES / WIRE_RATE
        if self.first_open_frame_at is None and use_source:
            self.first_open_frame_at = self.last_frame_sent_at - WIRE_FRAME_SAMPLES / WIRE_RATE
        return frame

    async def _read(self) -> Pcm | None:
        try:
            pcm = await self._source.read()
        except AudioError as exc:
            log.debug("mic source failed, sending silence from now on: %s", exc)
            self.source_error = exc
            return None
        if pcm.shape != (WIRE_FRAME_SAMPLES,):  # a source broke its contract: fit rather than corrupt the stream
            fitted = silence(WIRE_FRAME_SAMPLES)
            flat = pcm.reshape(-1)[:WIRE_FRAME_SAMPLES]
            fitted[: flat.size] = flat
            pcm = fitted
        return pcm


OnAudible = Callable[[str | None, float], None]
OnSounding = Callable[[bool, float], None]


def _ignore(*_args: object) -> None:
    pass


class Player:
    """Plays the remote track into a sink, with a jitter pre-buffer, flush with fade, and play accounting.

    Call order: ``run(track)`` once (it returns when the track ends); ``flush``/``mark_response`` and the
    read-only figures any time on the event loop thread. A :class:`~voicecoach.audio.base.PullSink` (a
    device) pulls from the buffer on its own audio thread; any other sink is clocked out by a task inside
    ``run`` in blocks of ``PUMP_BLOCK_MS`` at wall-clock pace, so a time in the output file is a time in the
    run (gaps are silence).

    Events, always called on the event loop thread, with times from ``clock`` taken when the block was handed
    to the sink (in the device's callback, or when written to the file), never when it was received. Both
    must return quickly and not raise.

    * ``on_audible(response_id, at)``: the first loud sample since ``mark_response(response_id)`` was handed
      over: the end point of "hint → audio".
    * ``on_sounding(sounding, at)``: the output started producing sound, or stopped (the loud run ended: a
      pause, an underrun, or a flush; ``at`` is when its last loud sample was handed over): the end point of
      "interrupt → silence".

    A device's callback tells the loop (``call_soon_threadsafe``) only while something loud is queued or
    playing, so an idle player costs no wake-ups. The figures (``played_ms``, ``is_playing``) are as of the
    last hand-over the loop has heard of.

    After ``flush()`` incoming audio is discarded until the cancelled response's tail has stopped arriving
    (``HOLD_SILENCE_MS`` of silence), a different response is marked, or ``HOLD_MAX_S`` has passed: without
    that, audio still in flight from the server would play right after the fade.
    """

    def __init__(
        self,
        sink: FrameSink,
        *,
        prebuffer_ms: int = PREBUFFER_MS,
        clock: Callable[[], float] = time.monotonic,
        on_audible: OnAudible | None = None,
        on_sounding: OnSounding | None = None,
    ) -> None:
        self.sink = sink
        self.rate = sink.rate
        self.on_audible: OnAudible = on_audible or _ignore
        self.on_sounding: OnSounding = on_sounding or _ignore
        self._clock = clock
        self._buf = PlayoutBuffer(sink.rate, sink.channels, prebuffer_ms=prebuffer_ms)
        self._ledger = PlayLedger()
        self._prebuffer = sink.rate * prebuffer_ms // 1000
        self._resampler: Resampler | None = None
        self._response_id: str | None = None
        self._cuts_seen = 0
        self._watching = False  # the output reports its pulls to the loop (something loud is queued or playing)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._audible_at: float | None = None
        self._hold_since: float | None = None
        self._hold_response: str | None = None
        self._hold_silent = 0
        self.frames_received = 0
        # Pushed audio (feed) that did not fit the ring yet: a WebSocket delivers a whole hint at once.
        self._backlog = FeedBacklog(sink.rate, sink.channels, max(1, sink.rate * FEED_BLOCK_MS // 1000))

    # --- the event-loop side -----------------------------------------------------------------------------

    async def run(self, track: MediaStreamTrack) -> None:
        """Drain ``track`` until it ends, whatever the mute or flush state, serving the sink meanwhile (a
        transport that uses :meth:`feed` passes a track that ends with its connection)."""
        try:
            await self._run(track)
        finally:
            self._backlog.clear()  # pushed audio belongs to the link that delivered it: never replay it later

    async def _run(self, track: MediaStreamTrack) -> None:
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        if isinstance(self.sink, PullSink):
            self.sink.start(self._device_pull)
            await self._drain(track)
            return
        try:
            async with asyncio.TaskGroup() as tg:
                pump = tg.create_task(self._pump(), name="player-pump")
                try:
                    await self._drain(track)
                finally:
                    pump.cancel()
        except* AudioError as group:  # the sink failed (disk full...): surface its one-line error, not a group
            raise group.exceptions[0] from None  # the group is our own wrapper: its one error is the cause
        self._write_rest()

    async def _drain(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                log.debug("remote audio ended after %d frames", self.frames_received)
                return
            if isinstance(frame, av.AudioFrame):  # an audio track yields nothing else; the check narrows the type
                self._on_frame(frame)

    def _on_frame(self, frame: av.AudioFrame) -> None:
        self.frames_received += 1
        pcm = pcm_from_frame(frame)
        r = self._resampler
        if r is None or r.in_rate != frame.sample_rate or r.in_channels != pcm.shape[1]:
            r = self._resampler = Resampler(frame.sample_rate, pcm.shape[1], self.sink.rate, self.sink.channels)
        out = r.process(pcm)
        # Judge the output, not the input: the resampler's delay carries the end of one frame into the next, so
        # a silent frame right after held (discarded) audio would otherwise leak a few ms of it.
        loud = bool(out.size) and int(np.abs(out.astype(np.int32)).max()) > SILENCE_PEAK
        if loud and self._holding():
            loud, out = False, np.zeros_like(out)
        elif not loud and self._hold_since is not None:
            self._hold_silent += pcm.shape[0] * 1000 // frame.sample_rate
        if not loud and self._buf.buffered > self._prebuffer + self.rate * DRIFT_SLACK_MS // 1000:
            return  # a sink clock slower than the sender's would grow the latency forever: shed silence
        start = self._buf.write_pos
        end = start + self._buf.push(out)
        if loud and end > start:
            self._ledger.pushed(start, end)
            self._watching = True

    def feed(self, pcm: Pcm, rate: int, response_id: str | None = None) -> None:
        """Play pushed PCM (a WebSocket's deltas, faster than real time) from the same ring and accounting;
        nothing is dropped but a flushed response's audio (:class:`~.feed.FeedBacklog`)."""
        self._backlog.add(pcm, rate, response_id)
        self._top_up()

    def _top_up(self) -> None:
        """Move pushed audio from the backlog into the ring, block by block, while it has room."""
        backlog = self._backlog
        while backlog:
            piece = backlog.peek()
            loud = int(np.abs(piece.astype(np.int32)).max()) > SILENCE_PEAK
            start = self._buf.write_pos
            n = self._buf.push(piece)
            if loud and n:
                self._ledger.pushed(start, start + n)
            backlog.consumed(n)
            if n < piece.shape[0]:
                break  # the ring is full: the output's next reads make room (see _pulled)
        if backlog or not self._ledger.idle:
            self._watching = True  # the output reports its reads, so the loop tops up and accounts

    def _holding(self) -> bool:
        """True while incoming audio is the tail of a flushed response (see the class docstring)."""
        if self._hold_since is None:
            return False
        if self._hold_silent >= HOLD_SILENCE_MS or self._clock() - self._hold_since >= HOLD_MAX_S:
            log.debug("player: hold after flush released")
            self._hold_since = None
            return False
        self._hold_silent = 0
        return True

    def _device_pull(self, out: Pcm) -> None:
        """The device's callback (its audio thread): fill the block, and tell the loop if it must know."""
        self._buf.pull(out)
        if not self._watching:
            return
        read, at = self._buf.read_pos, self._clock()
        if threading.get_ident() == self._loop_thread:  # a sink driven on the loop itself (tests, fakes)
            self._pulled(read, at)
            return
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._pulled, read, at)
            except RuntimeError:  # the loop closed while the stream still runs: nobody is listening
                pass

    def _pulled(self, read: int, at: float) -> None:
        """On the loop: the output read up to ``read`` at ``at``; account for it and fire the events."""
        cuts, self._cuts_seen = self._buf.cuts_since(self._cuts_seen)
        for event in self._ledger.advance(read, cuts, at):
            if isinstance(event, Audible):
                self._audible_at = event.at
                self.on_audible(event.response_id, event.at)
            elif isinstance(event, Sounding):
                self.on_sounding(event.sounding, event.at)
        if self._backlog:
            self._top_up()
        elif self._ledger.idle:
            self._watching = False

    async def _pump(self) -> None:
        block = silence(self.rate * PUMP_BLOCK_MS // 1000, self.sink.channels).reshape(-1, self.sink.channels)
        period = block.shape[0] / self.rate
        start, done = time.monotonic(), 0
        while True:
            due = int((time.monotonic() - start) / period)
            for _ in range(due - done):  # catch up after a stall: the file's timeline follows the wall clock
                self._buf.pull(block)
                self.sink.write(block.copy())
                if self._watching:
                    self._pulled(self._buf.read_pos, self._clock())
            done = max(done, due)
            await asyncio.sleep(max(0.0, start + (done + 1) * period - time.monotonic()))

    def _write_rest(self) -> None:
        """The track ended: a file gets what is still queued straight away (nobody waits for real time)."""
        rest = self._buf.buffered
        if rest > 0:
            block = silence(rest, self.sink.channels).reshape(-1, self.sink.channels)
            self._buf.pull(block, ignore_prebuffer=True)
            self.sink.write(block)
            self._pulled(self._buf.read_pos, self._clock())

    def flush(self) -> bool:
        """Fade out and drop everything queued: silent within one output block plus the fade (FADE_MS).

        5 ms (240 samples at 48 kHz) is long enough to avoid a click and short enough for the interrupt budget
        of one block + 5 ms (BENCHMARKS.md): a 10 ms fade measured 11.3 ms p95 on a 3.7 ms device block.
        Returns True if the output was sounding: ``on_sounding(False, at)`` then follows once the fade has
        been handed over; False: nothing was audible, so there is nothing to wait for.
        """
        self._buf.flush()
        self._hold_since, self._hold_silent, self._hold_response = self._clock(), 0, self._response_id
        # The marked response's audio too: it may not have arrived yet, and must not play when it does.
        self._backlog.flush(self._response_id)
        log.debug("player: flush (%d samples queued)", self._buf.buffered)
        return self._ledger.sounding

    def mark_response(self, response_id: str | None) -> None:
        """Attribute later non-silent audio to ``response_id`` (None: nobody); ``on_audible`` gives its start."""
        self._response_id = response_id
        self._ledger.mark(response_id)
        self._audible_at = None
        if response_id is not None and response_id != self._hold_response:
            self._hold_since = None  # a new response's audio must not be discarded as the old one's tail

    # --- figures (on the loop thread, as of the last hand-over the loop has heard of) ------------------------

    def played_ms(self, response_id: str) -> float:
        """Milliseconds of ``response_id``'s audio actually played (handed to the output), not just received."""
        return self._ledger.played_samples(response_id) * 1000 / self.rate

    @property
    def is_playing(self) -> bool:
        """The output is producing sound (between ``on_sounding(True)`` and ``on_sounding(False)``)."""
        return self._ledger.sounding

    @property
    def first_audio_at(self) -> float | None:
        """When the first loud sample since ``mark_response`` reached the speaker (``on_audible`` + latency)."""
        if self._audible_at is None:
            return None
        return self._audible_at + getattr(self.sink, "output_latency", 0.0)

    @property
    def underruns(self) -> int:
        """Times the player's ring ran dry while playing (audio arrived too late from the network)."""
        return self._buf.underruns

    @property
    def device_underruns(self) -> int:
        """Times the sound card asked for a block too late (ALSA's "underrun occurred"); 0 for files."""
        return int(getattr(self.sink, "output_underflows", 0))

    @property
    def buffered_ms(self) -> float:
        return self._buf.buffered * 1000 / self.rate
