"""PCM maths: the one place that converts between numpy sample arrays and ``av.AudioFrame``.

Conventions used across the project:

* PCM is ``int16`` numpy arrays. Mono is 1-D ``(n,)``; multi-channel is 2-D ``(n, channels)`` (interleaved
  order, as WAV files and PortAudio use it).
* The wire side of WebRTC is 48 kHz. aiortc decodes Opus to 48 kHz *stereo* packed ``s16`` frames of 960
  samples (20 ms); we send 48 kHz *mono* ``s16`` frames of 960 samples.
* Resampling is av's (libswresample), never hand-written: it is band-limited and keeps state across calls,
  so a stream resampled frame by frame has no clicks at the frame edges.

Every block size of the audio path is defined here, so that a budget stated in blocks can be checked in one
place (see "Block sizes" below).
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]

WIRE_RATE = 48_000

# --- Block sizes --------------------------------------------------------------------------------------------
# "Interrupt within one audio block" (design.md §4, BENCHMARKS.md) means one OUTPUT block: the block a sound
# card's callback pulls from the playout ring (its size is the host's choice under OUTPUT_LATENCY_S; 3.7 ms on
# PulseAudio through ALSA), or PUMP_BLOCK_MS for a file sink. PlayoutBuffer.flush() takes effect at the next
# pull, so the output is silent at most one output block + FADE_MS after the flush. The 20 ms wire frame is
# not that block: a flush never waits for a frame boundary.
FRAME_MS = 20  # one WebRTC audio frame, both ways (aiortc's Opus packetization)
WIRE_FRAME_SAMPLES = WIRE_RATE * FRAME_MS // 1000  # 960: what every FrameSource.read() returns
INPUT_BLOCK_MS = 10  # mic callback block: a hand-off per 10 ms keeps latency low without spinning
# Output device: a suggested latency of 15 ms with blocks of the host's choosing. On PulseAudio (through ALSA)
# that played 2 s bursts with 0-2 underflows, all at stream start; fixed 10 ms blocks, or PortAudio's "low"
# suggestion with them, lost up to half the audio; 40 ms was flawless but a flush could then not be silent
# within 30 ms, since whatever the host has buffered still plays. The playout ring accepts any block size.
OUTPUT_LATENCY_S = 0.015
PUMP_BLOCK_MS = 10  # file sinks are clocked out in blocks of this size, like a device callback
FADE_MS = 5  # flush fade: see Player.flush for why 5 ms
PREBUFFER_MS = 80  # default jitter pre-buffer of the playout ring (settings.prebuffer_ms overrides it)

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
