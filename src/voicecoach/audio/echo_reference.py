"""The echo canceller's far end: what the speakers played, laid out on the monotonic clock.

The microphone hears the speakers some milliseconds after they play, and the two streams reach us through
different queues at different moments, so frames cannot be paired by arrival. Every far-end block is placed
at the time its first sample left the speaker (PortAudio's ``outputBufferDacTime``, or the capture time of the
call's monitor), every microphone frame at the time its first sample reached the microphone
(``inputBufferAdcTime``), and the canceller is handed the far end *of the same moment* as each microphone
block: what is left between them is the acoustic path, which AEC3's delay estimator follows.

Two sources feed it, never both at once (:mod:`voicecoach.echo_setup` picks):

* :class:`PlayedTap`: our own playout, taken from the output device's callback (``DeviceSink.played``);
* :class:`CallAudioTee`: the monitor of the sink the speakers play, when the call's audio is captured from
  it. It already holds our playout (the hints go to the same sink), so adding :class:`PlayedTap` would count
  the coach's voice twice.

Positions stay contiguous (:class:`Cursor`): each stream goes on from where it left off, and follows its
timestamps only slowly, so that their jitter never tears the reference, while clock drift between two devices
is followed; only a stall or a restart jumps, and AEC3 re-converges after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator

import numpy as np

from ..errors import AudioError, DeviceUnavailable
from .base import FrameSource
from .frames import FRAME_MS, WIRE_RATE, Pcm, Resampler, downmix, silence

log = logging.getLogger(__name__)

SPAN_S = 2.0  # far end kept: far more than any echo path AEC3 follows (it measured up to 300 ms of offset)
# How a stream's position follows its timestamps (Cursor): smoothing, dead band, slew limit, resync.
TAU_S = 1.0
DEADBAND_S = 0.002
SLEW_PPM = 300.0  # above the drift of two ordinary sound cards (about 100 ppm); faster slewing hurt AEC3
JUMP_S = 0.010
PERSIST_S = 0.050
RESYNC_S = 0.1
PLAYED_BLOCKS = 256  # output blocks the device callback may queue between two drains (about 1 s at 3.7 ms)
BRANCH_FRAMES = 10  # call-audio frames kept for the them link while its session is down (200 ms)


class Cursor:
    """Where the next block of a contiguous stream goes, in samples of the far end's clock.

    A stream's own sample count is its best clock over seconds; its timestamps are the truth over minutes but
    jitter by milliseconds from block to block (by up to 16 ms under PulseAudio's module-loopback, measured).
    So a block goes where the previous one ended, the timestamps' error is smoothed over :data:`TAU_S`, and when
    it passes :data:`DEADBAND_S` the position slews towards them at most :data:`SLEW_PPM` (AEC3 follows a
    delay that moves this slowly: 66-68 dB at 200 ppm, 21-45 dB when slewing at 2000 ppm, measured). It jumps
    when the error is beyond :data:`JUMP_S` for :data:`PERSIST_S` (a real gap: an output underrun, dropped
    frames), or at once beyond :data:`RESYNC_S` (a stall, a restarted stream); AEC3 re-converges after a jump.
    """

    def __init__(self) -> None:
        self._next: float | None = None
        self._error = 0.0  # smoothed (timestamp - position), in samples
        self._beyond = 0  # samples placed in a row while the raw error was beyond JUMP_S
        self.jumps = 0  # re-anchors after the first placement

    def place(self, began: float, samples: int) -> int:
        wanted = began * WIRE_RATE
        raw = None if self._next is None else wanted - self._next
        far_off = raw is not None and abs(raw) > JUMP_S * WIRE_RATE
        self._beyond = self._beyond + samples if far_off else 0
        if raw is None or abs(raw) > RESYNC_S * WIRE_RATE or self._beyond >= PERSIST_S * WIRE_RATE:
            self.jumps += self._next is not None
            self._next, self._error, self._beyond = wanted, 0.0, 0
        else:
            assert self._next is not None and raw is not None
            self._error += min(1.0, samples / (TAU_S * WIRE_RATE)) * (raw - self._error)
            if abs(self._error) > DEADBAND_S * WIRE_RATE:
                limit = samples * SLEW_PPM * 1e-6
                step = max(-limit, min(limit, self._error))
                self._next += step
                self._error -= step
        at = round(self._next)
        self._next += samples
        return at


class FarEnd:
    """The last :data:`SPAN_S` of far-end audio, 48 kHz mono, indexed by sample (``round(monotonic * 48000)``).

    Pure: nothing here reads a clock. Samples never written (before the first block, in a gap, past the end)
    read as silence, which is what the speakers played if nothing was written for them.
    """

    def __init__(self, span_s: float = SPAN_S) -> None:
        self._ring = silence(round(span_s * WIRE_RATE))
        self._start = 0  # first sample held
        self._end: int | None = None  # one past the last sample written
        self._written = asyncio.Event()

    @property
    def end(self) -> int | None:
        return self._end

    def write(self, pcm: Pcm, at: int) -> None:
        if pcm.size > self._ring.size:  # only the last SPAN_S of one huge block can be kept
            pcm, at = pcm[-self._ring.size :], at + pcm.size - self._ring.size
        n, span = pcm.size, self._ring.size
        if n == 0:
            return
        if self._end is None or not self._end - span < at < self._end + span:
            self._start, self._end = at, at  # first block, or so far off that nothing held is near it
        elif at > self._end:
            self._fill(self._end, silence(at - self._end))  # a gap: nothing played then
        elif at + n < self._start:  # before what is held, with a hole up to it: nothing played there either
            self._fill(at + n, silence(self._start - at - n))
        self._fill(at, pcm)
        self._end = max(self._end, at + n)
        self._start = max(min(self._start, at), self._end - span)
        self._written.set()

    def read(self, at: int, samples: int) -> Pcm:
        out = silence(samples)
        if self._end is None:
            return out
        lo, hi = max(at, self._start), min(at + samples, self._end)
        if lo < hi:
            out[lo - at : hi - at] = self._take(lo, hi - lo)
        return out

    async def wait_until(self, sample: int, within: float) -> bool:
        """Wait (at most ``within`` s) until the far end reaches ``sample``; False when it did not."""
        try:
            async with asyncio.timeout(within):
                while self._end is None or self._end < sample:
                    self._written.clear()
                    await self._written.wait()
        except TimeoutError:
            return False
        return True

    def _fill(self, at: int, data: Pcm) -> None:
        span = self._ring.size
        i = at % span
        first = min(data.size, span - i)
        self._ring[i : i + first] = data[:first]
        self._ring[: data.size - first] = data[first:]

    def _take(self, at: int, samples: int) -> Pcm:
        span = self._ring.size
        i = at % span
        first = min(samples, span - i)
        return np.concatenate([self._ring[i : i + first], self._ring[: samples - first]])


class PlayedTap:
    """Our playout as the far end: drains the blocks the output callback queued (``DeviceSink.played``).

    The callback appends ``(block, dac_time)`` to a bounded deque (one copy, no lock: ``deque.append`` is
    atomic); :meth:`drain`, on the event loop, converts them to 48 kHz mono and places them.
    """

    def __init__(self, far: FarEnd, played: deque[tuple[Pcm, float]], rate: int, channels: int) -> None:
        self._far = far
        self._played = played
        self._resampler = Resampler(rate, channels, WIRE_RATE, 1)
        self._cursor = Cursor()
        self._arrived = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting = False

    def notify(self) -> None:
        """From the audio thread, after each block queued: wakes :meth:`wait_until`, only while it waits."""
        loop = self._loop
        if self._waiting and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while the stream still ran
                loop.call_soon_threadsafe(self._arrived.set)

    async def wait_until(self, sample: int, within: float) -> bool:
        """Drain until the far end reaches ``sample``, waiting (at most ``within`` s) for the device to play on.

        Needed because the far end is read ahead of the microphone (``echo.REFERENCE_LEAD_S``) and a device
        may queue its blocks only a few ms before they play (4.5 ms measured on PulseAudio)."""
        self.drain()
        if self._far.end is not None and self._far.end >= sample:
            return True
        self._loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                while self._far.end is None or self._far.end < sample:
                    self._arrived.clear()
                    self._waiting = True
                    await self._arrived.wait()
                    self.drain()
        except TimeoutError:
            return False
        finally:
            self._waiting = False
        return True

    def drain(self) -> None:
        while self._played:
            block, began = self._played.popleft()
            pcm = downmix(self._resampler.process(block))
            self._far.write(pcm, self._cursor.place(began, pcm.size))

    @property
    def jumps(self) -> int:
        return self._cursor.jumps


class CallAudioTee:
    """Reads the call's audio once, for two readers: the far end, and the them link (:meth:`branch`).

    The them link reads only while its session is up, but the echo canceller needs the speakers' signal all
    the time; so this reads the source in a task of its own (owned by :meth:`running`) and keeps the last
    :data:`BRANCH_FRAMES` for the branch, as a sound card's queue would. The source must be one whose
    ``read`` waits for real time (a device, or a paced file), or this task would never yield to the loop.
    """

    def __init__(self, source: FrameSource, far: FarEnd) -> None:
        self._source = source
        self._far = far
        self._cursor = Cursor()
        self._frames: deque[tuple[Pcm, float | None]] = deque(maxlen=BRANCH_FRAMES)
        self._ready = asyncio.Event()
        self._error: AudioError | None = None
        self.branch_source = _Branch(self)

    @property
    def jumps(self) -> int:
        return self._cursor.jumps

    def branch(self) -> FrameSource:
        return self.branch_source

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._run(), name="call-audio-tee")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._error is None:  # a branch read after the run must end, not wait for a reader that is gone
                self._fail(DeviceUnavailable("the call's audio is closed"))

    async def _run(self) -> None:
        while True:
            try:
                pcm = await self._source.read()
            except AudioError as exc:
                self._fail(exc)
                log.debug("call audio ended: %s", exc)
                return
            except Exception as exc:  # a bug in a source must not leave the them link waiting forever
                self._fail(DeviceUnavailable(f"the call's audio stopped ({exc})"))
                log.warning("the call's audio stopped: %s", exc)
                return
            began = getattr(self._source, "frame_time", None)
            if began is None:
                began = time.monotonic() - FRAME_MS / 1000  # a file: read as its frame is due
            self._far.write(pcm, self._cursor.place(began, pcm.size))
            self._frames.append((pcm, began))
            self._ready.set()

    def _fail(self, error: AudioError) -> None:
        self._error = error
        self._ready.set()

    async def _read(self) -> tuple[Pcm, float | None]:
        while not self._frames:
            if self._error is not None:
                raise self._error
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()


class _Branch:
    """The them link's view of the tee: a realtime :class:`FrameSource` with ``frame_time``."""

    realtime = True

    def __init__(self, tee: CallAudioTee) -> None:
        self._tee = tee
        self.frame_time: float | None = None
        self.description = getattr(tee._source, "description", "the call's audio")

    async def read(self) -> Pcm:
        pcm, self.frame_time = await self._tee._read()
        return pcm

    def close(self) -> None:
        self._tee._source.close()
