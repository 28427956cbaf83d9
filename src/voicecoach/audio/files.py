"""Frame sources and sinks that need no hardware: audio files, in-memory PCM, and a sink that discards.

They implement the protocols of :mod:`voicecoach.audio.base`; :mod:`voicecoach.audio.devices` does the same
for sound cards. This module must never import sounddevice, so that file-only runs work without PortAudio.

Input files are decoded by av (FFmpeg): WAV of any sample format (integer or float, WAVE_FORMAT_EXTENSIBLE,
a data size that is still a placeholder), FLAC, Ogg, MP3 and whatever else FFmpeg reads, resampled by av's
resampler to the pipeline's 48 kHz mono. They are streamed: a few packets are decoded ahead of the reader, so
a 10-hour file opens as fast as a 10-second one and holds the same memory. Output is 16-bit PCM WAV, written
by hand so that its header can be kept valid while it grows.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from ..errors import AudioError
from .base import EndingSource, FrameSink, FrameSource, PullSink
from .frames import WIRE_FRAME_SAMPLES, WIRE_RATE, FrameChunker, Pcm, downmix, pcm_from_frame, resample, silence, upmix

# The protocols' old home: modules written before audio/base.py existed import them from here.
__all__ = [
    "EndingSource",
    "FileSource",
    "FrameSink",
    "FrameSource",
    "NullSink",
    "PcmSource",
    "PullSink",
    "WavSink",
    "read_wav",
    "wav_header",
]

log = logging.getLogger(__name__)

_FORMAT_PCM = 0x0001
_FORMATS_HINT = "give a WAV, FLAC, Ogg or MP3 file (convert others with `sox IN OUT.wav` or `ffmpeg -i IN OUT.wav`)"
HEADER_INTERVAL_S = 0.5  # WavSink rewrites its sizes at least this often, so a killed process leaves a valid file
READ_AHEAD_FRAMES = 2  # wire frames decoded ahead of the reader: enough to know which read returns the last one
# FFmpeg's default probing reads about 1 MB and 5 s of audio before the first frame: 30-60 ms for a WAV, on
# the event loop. Audio formats carry their parameters in the header, so a small probe is enough; a stream
# it leaves without a rate or channels is probed again with the defaults.
_QUICK_PROBE = {"probesize": "32768", "analyzeduration": "0"}


class PcmSource:
    """A :class:`~voicecoach.audio.base.EndingSource` over a buffer in memory, converted once to 48 kHz mono.

    ``read`` returns 960-sample frames (the last one padded with zeros), then silence forever. ``ended`` is
    set once the frame holding the last real sample has been read. Not realtime: the reader paces it.
    """

    realtime = False

    def __init__(self, pcm: Pcm, rate: int) -> None:
        mono = downmix(np.asarray(pcm, dtype=np.int16))
        # (libav fails on an empty frame, so an empty buffer skips the resampler.)
        self._pcm = mono if rate == WIRE_RATE or mono.size == 0 else resample(mono, rate, WIRE_RATE, 1)
        self._pos = 0
        self.ended = asyncio.Event()

    @property
    def duration_s(self) -> float:
        return self._pcm.size / WIRE_RATE

    async def read(self) -> Pcm:
        frame = self._pcm[self._pos : self._pos + WIRE_FRAME_SAMPLES]
        self._pos += WIRE_FRAME_SAMPLES
        if self._pos >= self._pcm.size and not self.ended.is_set():
            self.ended.set()
        if frame.size == WIRE_FRAME_SAMPLES:
            return frame.copy()
        out = silence(WIRE_FRAME_SAMPLES)
        out[: frame.size] = frame
        return out

    def close(self) -> None:
        """Nothing to release; reading on returns silence (a closed buffer is just a finished one)."""
        self._pos = self._pcm.size


class FileSource:
    """An :class:`~voicecoach.audio.base.EndingSource` streamed from an audio file, as 48 kHz mono frames.

    The file is opened and its first audio decoded at construction, so a missing, unreadable, corrupt or
    unsupported file is an :class:`AudioError` naming it before the run starts, never in the middle. After
    that, damage further in ends the file there (logged at DEBUG). ``read`` returns 960-sample frames (the
    last one padded with zeros). Without ``loop``: ``ended`` is set by the read that returns the last frame,
    and every later read returns silence. With ``loop``: the file starts again at its end, and ``ended`` is
    never set (unless the file holds no audio at all). Not realtime: the reader (the mic track) paces it.

    Decoding happens inside ``read``, on the event loop: one packet at a time, a few milliseconds of audio
    each, which costs microseconds (the file is read through the OS's cache, a packet at a time).
    """

    realtime = False

    def __init__(self, path: Path, *, loop: bool = False) -> None:
        self.path = path
        self.loop = loop
        self.ended = asyncio.Event()
        self._frames: deque[Pcm] = deque()
        self._chunker = FrameChunker(WIRE_FRAME_SAMPLES)
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=WIRE_RATE)
        self._eof = False
        self._pass_samples = 0  # samples decoded in the current pass over the file (a loop of nothing ends)
        self._container, self._decoded = _open(path)
        stream = self._container.streams.audio[0]
        duration = self._container.duration / 1e6 if self._container.duration else None
        log.debug("input file %s: %s, %d Hz, %s s", path, stream.codec_context.name, stream.rate, duration)
        try:
            self._fill()
        except AudioError:
            self._container.close()
            raise
        if self._pass_samples == 0 and not self._frames:
            log.debug("input file %s holds no audio", path)

    @property
    def buffered_samples(self) -> int:
        """Samples decoded but not read yet: bounded by a few packets, whatever the file's length."""
        return sum(f.size for f in self._frames) + self._chunker.pending

    async def read(self) -> Pcm:
        if len(self._frames) < READ_AHEAD_FRAMES:
            try:
                self._fill()
            except AudioError as exc:  # damage past the start: the file ends here
                log.debug("%s", exc)
                self._finish()
        if self._frames:
            frame = self._frames.popleft()
            if not self._frames and self._eof:
                self.ended.set()
            return frame
        self.ended.set()
        return silence(WIRE_FRAME_SAMPLES)

    def close(self) -> None:
        """Release the file; reading on returns silence (a closed file is just a finished one)."""
        self._frames.clear()
        self._eof = True
        self._container.close()

    def _fill(self) -> None:
        """Decode until ``READ_AHEAD_FRAMES`` frames are ready or the file has ended."""
        while len(self._frames) < READ_AHEAD_FRAMES and not self._eof:
            try:
                frame = next(self._decoded)
            except StopIteration:
                if self.loop and self._pass_samples > 0:
                    self._rewind()
                    continue
                self._finish()
                return
            except (av.error.FFmpegError, OSError) as exc:
                raise AudioError(f"input file {self.path} is damaged: {_reason(exc)}; {_FORMATS_HINT}") from exc
            self._pass_samples += frame.samples
            self._push(self._resampler.resample(frame))

    def _rewind(self) -> None:
        """Back to the start for the next pass: a seek (microseconds); reopening if the file cannot seek."""
        self._pass_samples = 0
        try:
            self._container.seek(0)
            self._decoded = self._container.decode(self._container.streams.audio[0])
        except (av.error.FFmpegError, OSError):
            self._container.close()
            self._container, self._decoded = _open(self.path)

    def _finish(self) -> None:
        """The end of the audio: the resampler's tail, and the last partial frame padded with silence."""
        if self._eof:
            return
        self._eof = True
        self._push(self._resampler.resample(None))
        pending = self._chunker.pending
        if pending:
            self._frames.extend(self._chunker.push(silence(WIRE_FRAME_SAMPLES - pending)))

    def _push(self, frames: list[av.AudioFrame]) -> None:
        for f in frames:
            self._frames.extend(self._chunker.push(pcm_from_frame(f)[:, 0]))


def _open(
    path: Path, options: dict[str, str] | None = _QUICK_PROBE
) -> tuple[av.container.InputContainer, Iterator[av.AudioFrame]]:
    """The file's container and a decoder of its first audio stream, or :class:`AudioError`."""
    try:
        container = av.open(str(path), mode="r", options=options or {})
    except FileNotFoundError as exc:
        raise AudioError(f"input file {path} does not exist: check the path given to --input-file") from exc
    except av.error.InvalidDataError as exc:
        raise AudioError(f"input file {path} is not an audio file that can be decoded; {_FORMATS_HINT}") from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise AudioError(f"cannot read input file {path}: {_reason(exc)}") from exc
    if not container.streams.audio:
        container.close()
        raise AudioError(f"input file {path} has no audio in it; {_FORMATS_HINT}")
    stream = container.streams.audio[0]
    if options and stream.codec_context is not None and not (stream.rate and stream.codec_context.channels):
        container.close()
        return _open(path, None)  # the quick probe was not enough for this file
    if stream.codec_context is None:  # FFmpeg knows the container but has no decoder for the codec in it
        container.close()
        raise AudioError(f"input file {path} holds audio in a codec that cannot be decoded; {_FORMATS_HINT}")
    return container, container.decode(stream)


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def read_wav(path: Path) -> tuple[Pcm, int]:
    """All samples of an audio file at its own rate (``(n,)`` mono or ``(n, channels)``, int16), and the rate.

    For tests and tools that check what a run wrote; a run streams its input with :class:`FileSource`.
    Raises :class:`AudioError` like :class:`FileSource`.
    """
    container, decoded = _open(path)
    with container:
        stream = container.streams.audio[0]
        rate, channels = stream.rate, stream.codec_context.channels
        resampler = av.AudioResampler(format="s16", layout=stream.layout.name, rate=rate)
        chunks: list[Pcm] = []
        try:
            for frame in decoded:
                chunks.extend(pcm_from_frame(f) for f in resampler.resample(frame))
        except (av.error.FFmpegError, OSError) as exc:
            raise AudioError(f"input file {path} is damaged: {_reason(exc)}; {_FORMATS_HINT}") from exc
        chunks.extend(pcm_from_frame(f) for f in resampler.resample(None))
    pcm = np.concatenate(chunks) if chunks else np.zeros((0, channels), dtype=np.int16)
    return np.ascontiguousarray(pcm[:, 0] if channels == 1 else pcm, dtype=np.int16), rate


def wav_header(rate: int, channels: int, data_bytes: int) -> bytes:
    """A 44-byte header for 16-bit PCM."""
    align = 2 * channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        *(b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, _FORMAT_PCM, channels),
        *(rate, rate * align, align, 16, b"data", data_bytes),
    )


class WavSink:
    """A :class:`FrameSink` writing 16-bit PCM WAV.

    The header's sizes are rewritten (and the data flushed to the OS) at least every ``HEADER_INTERVAL_S``, so
    a killed process leaves a playable file holding all but the last fraction of a second. ``close`` writes
    the final sizes; it is idempotent. ``frames_written`` counts sample frames (per channel).
    """

    def __init__(
        self, path: Path, rate: int = 24000, channels: int = 1, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.rate = rate
        self.channels = channels
        self.frames_written = 0
        self._clock = clock
        try:
            self._file: BinaryIO | None = path.open("wb")
            self._file.write(wav_header(rate, channels, 0))
            self._file.flush()
        except OSError as exc:
            raise AudioError(
                f"cannot write output file {path}: {exc.strerror or exc}; check --output-file names a writable place"
            ) from exc
        self._synced_at = clock()

    def write(self, pcm: Pcm) -> None:
        f = self._file
        if f is None:
            return
        two_d = pcm.reshape(-1, 1) if pcm.ndim == 1 else pcm
        if two_d.shape[1] != self.channels:  # tolerate a mono/stereo mismatch rather than write garbage
            two_d = upmix(downmix(pcm), self.channels).reshape(-1, self.channels)
        try:
            f.write(np.ascontiguousarray(two_d, dtype="<i2").tobytes())
        except OSError as exc:
            raise AudioError(f"cannot write output file {self.path}: {exc.strerror or exc}") from exc
        self.frames_written += two_d.shape[0]
        if self._clock() - self._synced_at >= HEADER_INTERVAL_S:
            self._sync()

    def close(self) -> None:
        f, self._file = self._file, None
        if f is None:
            return
        try:
            self._sync(f)
        finally:
            f.close()
        log.debug("output file %s: %d frames at %d Hz", self.path, self.frames_written, self.rate)

    def _sync(self, f: BinaryIO | None = None) -> None:
        f = f or self._file
        if f is None:
            return
        data_bytes = self.frames_written * 2 * self.channels
        try:
            end = f.tell()
            f.seek(0)
            f.write(wav_header(self.rate, self.channels, data_bytes))
            f.seek(end)
            f.flush()
        except OSError as exc:
            raise AudioError(f"cannot write output file {self.path}: {exc.strerror or exc}") from exc
        self._synced_at = self._clock()


class NullSink:
    """A :class:`FrameSink` that discards everything (48 kHz mono); counts ``frames_written``."""

    def __init__(self) -> None:
        self.rate = WIRE_RATE
        self.channels = 1
        self.frames_written = 0

    def write(self, pcm: Pcm) -> None:
        self.frames_written += pcm.shape[0]

    def close(self) -> None:
        pass
