"""PCM maths: the one place that converts between numpy sample arrays and ``av.AudioFrame``.

Conventions used across the project:

* PCM is ``int16`` numpy arrays. Mono is 1-D ``(n,)``; multi-channel is 2-D ``(n, channels)`` (interleaved
  order, as WAV files and PortAudio use it).
* The wire side of WebRTC is 48 kHz. aiortc decodes Opus to 48 kHz *stereo* packed ``s16`` frames of 960
  samples (20 ms); we send 48 kHz *mono* ``s16`` frames of 960 samples.
* Resampling is av's (libswresample), never hand-written: it is band-limited and keeps state across calls,
  so a stream resampled frame by frame has no clicks at the frame edges.
"""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]

WIRE_RATE = 48_000
FRAME_MS = 20
WIRE_FRAME_SAMPLES = WIRE_RATE * FRAME_MS // 1000  # 960
WIRE_TIME_BASE = Fraction(1, WIRE_RATE)

_LAYOUTS = {1: "mono", 2: "stereo"}


def samples_per_frame(rate: int, frame_ms: int = FRAME_MS) -> int:
    return rate * frame_ms // 1000


def silence(samples: int, channels: int = 1) -> Pcm:
    shape: tuple[int, ...] = (samples,) if channels == 1 else (samples, channels)
    return np.zeros(shape, dtype=np.int16)


def as_channels(pcm: Pcm) -> Pcm:
    """View ``pcm`` as 2-D ``(n, channels)``."""
    return pcm.reshape(-1, 1) if pcm.ndim == 1 else pcm


def downmix(pcm: Pcm) -> Pcm:
    """Average all channels into mono ``(n,)``. Mono input is returned unchanged."""
    if pcm.ndim == 1:
        return pcm
    if pcm.shape[1] == 1:
        return pcm[:, 0]
    mixed = pcm.astype(np.int32).sum(axis=1) // pcm.shape[1]
    return np.asarray(mixed, dtype=np.int16)


def upmix(pcm: Pcm, channels: int) -> Pcm:
    """Copy mono ``(n,)`` into ``(n, channels)``; ``channels == 1`` returns mono unchanged."""
    mono = downmix(pcm)
    if channels == 1:
        return mono
    return np.repeat(mono.reshape(-1, 1), channels, axis=1)


def pcm_from_frame(frame: av.AudioFrame) -> Pcm:
    """Samples of ``frame`` as int16 ``(n, channels)``, whatever its sample format (packed or planar)."""
    if frame.format.name != "s16":
        frame = _to_s16(frame)
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    # Packed s16 comes as (1, n * channels) in interleaved order.
    return np.ascontiguousarray(data.reshape(-1, channels), dtype=np.int16)


def frame_from_pcm(pcm: Pcm, rate: int, pts: int | None = None) -> av.AudioFrame:
    """Build a packed ``s16`` frame from ``(n,)`` or ``(n, channels)`` PCM, with ``time_base = 1/rate``."""
    two_d = as_channels(pcm)
    channels = two_d.shape[1]
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(two_d, dtype=np.int16).reshape(1, -1), format="s16", layout=_LAYOUTS[channels]
    )
    frame.sample_rate = rate
    frame.time_base = Fraction(1, rate)
    if pts is not None:
        frame.pts = pts
    return frame


def _to_s16(frame: av.AudioFrame) -> av.AudioFrame:
    resampler = av.AudioResampler(format="s16", layout=frame.layout.name, rate=frame.sample_rate)
    out = resampler.resample(frame)
    return out[0] if len(out) == 1 else _concat(out, frame.layout.name, frame.sample_rate)


def _concat(frames: list[av.AudioFrame], layout: str, rate: int) -> av.AudioFrame:
    pcm = np.concatenate([pcm_from_frame(f) for f in frames]) if frames else silence(0, 1)
    return frame_from_pcm(pcm, rate)


class Resampler:
    """Stateful converter from one (rate, channels) to another, fed chunk by chunk.

    Output may lag input by a few samples (the filter's delay); :meth:`flush` returns the tail.
    """

    def __init__(self, in_rate: int, in_channels: int, out_rate: int, out_channels: int) -> None:
        self.in_rate = in_rate
        self.in_channels = in_channels
        self.out_rate = out_rate
        self.out_channels = out_channels
        self._passthrough = in_rate == out_rate and in_channels == out_channels
        self._av = av.AudioResampler(format="s16", layout=_LAYOUTS[out_channels], rate=out_rate)

    def process(self, pcm: Pcm) -> Pcm:
        """Convert one chunk of ``(n,)`` / ``(n, in_channels)`` PCM; returns output shaped for out_channels."""
        if self._passthrough:
            return pcm
        if pcm.size == 0:  # libav cannot make an empty frame
            return silence(0, self.out_channels)
        if as_channels(pcm).shape[1] != self.in_channels:
            pcm = upmix(pcm, self.in_channels) if self.in_channels > 1 else downmix(pcm)
        return self._collect(self._av.resample(frame_from_pcm(pcm, self.in_rate)))

    def flush(self) -> Pcm:
        if self._passthrough:
            return silence(0, self.out_channels)
        return self._collect(self._av.resample(None))

    def _collect(self, frames: list[av.AudioFrame]) -> Pcm:
        if not frames:
            return silence(0, self.out_channels)
        out = np.concatenate([pcm_from_frame(f) for f in frames])
        return out[:, 0] if self.out_channels == 1 else out


def resample(pcm: Pcm, in_rate: int, out_rate: int, out_channels: int = 1) -> Pcm:
    """One-shot conversion of a whole buffer (tail included)."""
    channels = as_channels(pcm).shape[1]
    r = Resampler(in_rate, channels, out_rate, out_channels)
    return np.concatenate([r.process(pcm), r.flush()])


class FrameChunker:
    """Cut a stream of arbitrary-length PCM chunks into fixed-size frames (mono)."""

    def __init__(self, frame_samples: int) -> None:
        self.frame_samples = frame_samples
        self._pending = silence(0)

    def push(self, pcm: Pcm) -> list[Pcm]:
        buf = np.concatenate([self._pending, downmix(pcm)]) if self._pending.size else downmix(pcm)
        whole = buf.size // self.frame_samples * self.frame_samples
        self._pending = buf[whole:].copy()
        return [buf[i : i + self.frame_samples] for i in range(0, whole, self.frame_samples)]

    @property
    def pending(self) -> int:
        return int(self._pending.size)


def rms(pcm: Pcm) -> float:
    """Root-mean-square level in [0, 1] of full scale."""
    if pcm.size == 0:
        return 0.0
    x = pcm.astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(x * x)))


def envelope(pcm: Pcm, rate: int, window_ms: int = 20) -> npt.NDArray[np.float64]:
    """RMS envelope of mono PCM in windows of ``window_ms`` (used for correlation tests and VAD)."""
    mono = downmix(pcm).astype(np.float64) / 32768.0
    n = samples_per_frame(rate, window_ms)
    count = mono.size // n
    if count == 0:
        return np.zeros(0)
    blocks = mono[: count * n].reshape(count, n)
    return np.asarray(np.sqrt(np.mean(blocks * blocks, axis=1)), dtype=np.float64)


def fade_out_ramp(samples: int) -> npt.NDArray[np.float32]:
    """Gains for a linear fade to silence over ``samples``, shaped ``(samples, 1)`` to broadcast over channels.

    The first gain is just below 1 and the last just above 0, so the faded block joins both neighbours.
    """
    return np.linspace(1.0, 0.0, samples + 2, dtype=np.float32)[1:-1].reshape(-1, 1)


class PlayoutBuffer:
    """Single-producer, single-consumer ring of output PCM: jitter pre-buffer, flush with fade, underruns.

    The producer (the event loop) calls :meth:`push`, :meth:`flush` and reads the figures; the consumer (a
    device's audio thread, or a pump task) calls :meth:`pull`. Positions count sample frames since creation.
    It is lock-free by construction: each field has one writer (``write_pos`` and ``_flush_request`` the
    producer; ``read_pos``, ``underruns``, ``last_pull`` and the cut log the consumer) and every publication is
    one attribute store, atomic under the GIL. ``pull`` allocates nothing but one small tuple and never blocks.

    Flush: the consumer fades the next ``fade_ms`` of what was queued at the time of the request, then jumps to
    the write position of the request; audio pushed after ``flush()`` is kept. Each jump is logged as a cut
    ``(from, to)`` *before* ``read_pos`` moves, so a reader that reads ``read_pos`` first then the cuts never
    mistakes skipped audio for played audio. An underrun (the queue running dry while playing) plays zeros,
    counts once, and waits for the pre-buffer to fill again.
    """

    CUT_LOG = 64

    def __init__(self, rate: int, channels: int, *, prebuffer_ms: int = 80, capacity_s: float = 4.0, fade_ms: int = 5):
        self.rate = rate
        self.channels = channels
        self._ring = np.zeros((int(rate * capacity_s), channels), dtype=np.int16)
        self._prebuffer = max(0, rate * prebuffer_ms // 1000)
        self._ramp = fade_out_ramp(max(1, rate * fade_ms // 1000))
        self._scratch = np.zeros((self._ramp.shape[0], channels), dtype=np.float32)
        self.write_pos = 0
        self.read_pos = 0
        self.underruns = 0
        self.last_pull: tuple[int, int, float] = (0, 0, 0.0)  # (read_pos before, block frames, time.monotonic())
        self._flush_request = (0, 0)  # (sequence, write_pos at the request)
        self._flush_seen = 0
        self._fade: tuple[int, int, int] | None = None  # (fade start, fade end, jump target)
        self._priming = True
        self._cuts = np.zeros((self.CUT_LOG, 2), dtype=np.int64)
        self._cut_count = 0

    @property
    def buffered(self) -> int:
        return self.write_pos - self.read_pos

    def push(self, pcm: Pcm) -> int:
        """Queue ``(n,)``/``(n, channels)`` PCM; returns how many frames fitted (the rest is dropped)."""
        data = as_channels(pcm)
        n = min(int(data.shape[0]), int(self._ring.shape[0]) - self.buffered)
        self._copy_in(data[:n], self.write_pos)
        self.write_pos += n  # publish only after the samples are in place
        return n

    def flush(self) -> None:
        """Ask the consumer to fade out and drop everything queued so far (takes effect at its next pull)."""
        self._flush_request = (self._flush_request[0] + 1, self.write_pos)

    def cuts_since(self, count: int) -> tuple[list[tuple[int, int]], int]:
        """Cuts ``(from, to)`` logged after the first ``count``, and the count to pass next time.

        The log keeps the last ``CUT_LOG`` cuts; a reader that fell further behind gets only those.
        """
        end = self._cut_count
        rows = (self._cuts[i % self.CUT_LOG] for i in range(max(count, end - self.CUT_LOG), end))
        return [(int(a), int(b)) for a, b in rows], end

    def pull(self, out: Pcm, *, ignore_prebuffer: bool = False) -> None:
        """Fill ``out`` (``(frames, channels)`` int16) in place. Consumer side: cheap, never blocks."""
        start = self.read_pos
        seq, target = self._flush_request
        if seq != self._flush_seen:
            self._flush_seen = seq
            self._begin_flush(target)
        filled, frames = 0, int(out.shape[0])
        while filled < frames:
            if self._fade is not None:
                n = self._pull_fade(out, filled)
                filled += n
                if n:
                    continue
            available = self.write_pos - self.read_pos
            if self._priming and not ignore_prebuffer:
                if available < max(1, self._prebuffer):
                    break
                self._priming = False
            n = min(frames - filled, available)
            if n <= 0:
                if not self._priming:
                    self.underruns += 1  # plain increment: read and reported by the event loop, not here
                    self._priming = True
                break
            self._copy_out(out[filled : filled + n], self.read_pos)
            self.read_pos += n
            filled += n
        out[filled:] = 0
        self.last_pull = (start, frames, time.monotonic())

    def _begin_flush(self, target: int) -> None:
        if self._fade is not None:  # already fading: finish that fade, then jump to the newer target
            self._fade = (self._fade[0], self._fade[1], max(self._fade[2], target))
        elif self._priming:  # nothing audible yet: skip without a fade
            self._cut(self.read_pos, target)
        else:
            self._fade = (self.read_pos, min(self.read_pos + self._ramp.shape[0], target), target)

    def _pull_fade(self, out: Pcm, filled: int) -> int:
        assert self._fade is not None
        begin, end, target = self._fade
        n = min(int(out.shape[0]) - filled, end - self.read_pos)
        if n > 0:
            k = self.read_pos - begin
            scratch = self._scratch[:n]
            self._copy_out(out[filled : filled + n], self.read_pos)
            np.multiply(out[filled : filled + n], self._ramp[k : k + n], out=scratch)
            out[filled : filled + n] = scratch
            self.read_pos += n
        if self.read_pos >= end:
            self._fade = None
            self._cut(self.read_pos, target)
            self._priming = True  # what follows a flush is a new stream: re-buffer it
        return max(n, 0)

    def _cut(self, lo: int, hi: int) -> None:
        if hi > lo:
            self._cuts[self._cut_count % self.CUT_LOG] = (lo, hi)
            self._cut_count += 1
            self.read_pos = hi

    def _copy_in(self, data: Pcm, pos: int) -> None:
        size = self._ring.shape[0]
        i = pos % size
        first = min(data.shape[0], size - i)
        self._ring[i : i + first] = data[:first]
        self._ring[: data.shape[0] - first] = data[first:]

    def _copy_out(self, out: Pcm, pos: int) -> None:
        size = self._ring.shape[0]
        i = pos % size
        first = min(out.shape[0], size - i)
        out[:first] = self._ring[i : i + first]
        out[first:] = self._ring[: out.shape[0] - first]
