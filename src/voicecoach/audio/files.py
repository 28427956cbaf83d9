"""Frame sources and sinks that need no hardware: WAV files, in-memory PCM, and a sink that discards.

The two protocols here are what the runner and the tracks speak; :mod:`voicecoach.audio.devices` implements
them for sound cards. This module must never import sounddevice, so that file-only runs work without PortAudio.

WAV is parsed by hand rather than with :mod:`wave`, because on Python 3.11 ``wave`` rejects
WAVE_FORMAT_EXTENSIBLE (what sox writes for 24-bit or multi-channel audio) and refuses files whose data size is
still a placeholder (what a killed recorder leaves behind, including our own :class:`WavSink`).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import numpy as np

from ..errors import AudioError
from .frames import WIRE_FRAME_SAMPLES, WIRE_RATE, Pcm, downmix, resample, silence, upmix

log = logging.getLogger(__name__)

_FORMAT_PCM = 0x0001
_FORMAT_FLOAT = 0x0003
_FORMAT_EXTENSIBLE = 0xFFFE
_CONVERT_HINT = "convert it with `sox IN.wav -b 16 OUT.wav`"
HEADER_INTERVAL_S = 0.5  # WavSink rewrites its sizes at least this often, so a killed process leaves a valid file


class FrameSource(Protocol):
    """Produces 20 ms frames of 48 kHz mono int16 (``WIRE_FRAME_SAMPLES`` = 960 samples each).

    ``realtime`` is True when ``read`` itself waits for real time to pass (a device); False when the consumer
    must pace it (a file or a buffer, which can answer at once). After ``close`` a device's ``read`` raises
    :class:`~voicecoach.errors.AudioError`; a file keeps returning silence.
    """

    realtime: bool

    async def read(self) -> Pcm: ...

    def close(self) -> None: ...


class FrameSink(Protocol):
    """Consumes PCM already in the sink's own ``rate`` and ``channels`` (``(n,)`` or ``(n, channels)`` int16)."""

    rate: int
    channels: int

    def write(self, pcm: Pcm) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PullSink(Protocol):
    """A sink that plays in real time and pulls its audio (a device), instead of being written to.

    After ``start(pull)`` the sink calls ``pull(block)`` from its audio thread for every output block; ``pull``
    must fill the ``(frames, channels)`` int16 array in place, quickly, without blocking or allocating much.
    ``output_latency`` is the seconds from a pulled sample to the speaker, as far as the sink knows.
    """

    output_latency: float

    def start(self, pull: Callable[[Pcm], None]) -> None: ...


class PcmSource:
    """A :class:`FrameSource` over a buffer in memory, converted once to 48 kHz mono.

    ``read`` returns 960-sample frames (the last one padded with zeros), then silence forever. ``finished`` is
    set once the frame holding the last real sample has been read. Not realtime: the reader paces it.
    """

    realtime = False

    def __init__(self, pcm: Pcm, rate: int) -> None:
        mono = downmix(np.asarray(pcm, dtype=np.int16))
        # (libav fails on an empty frame, so an empty file skips the resampler.)
        self._pcm = mono if rate == WIRE_RATE or mono.size == 0 else resample(mono, rate, WIRE_RATE, 1)
        self._pos = 0
        self.finished = asyncio.Event()

    @property
    def duration_s(self) -> float:
        return self._pcm.size / WIRE_RATE

    async def read(self) -> Pcm:
        frame = self._pcm[self._pos : self._pos + WIRE_FRAME_SAMPLES]
        self._pos += WIRE_FRAME_SAMPLES
        if self._pos >= self._pcm.size and not self.finished.is_set():
            self.finished.set()
        if frame.size == WIRE_FRAME_SAMPLES:
            return frame.copy()
        out = silence(WIRE_FRAME_SAMPLES)
        out[: frame.size] = frame
        return out

    def close(self) -> None:
        """Nothing to release; reading on returns silence (a closed file is just a finished one)."""
        self._pos = self._pcm.size


class WavSource(PcmSource):
    """A :class:`PcmSource` read from a PCM WAV file (8/16/24/32-bit integer, any channels, any rate).

    Raises :class:`AudioError` at construction for a missing, unreadable, malformed or non-PCM file.
    """

    def __init__(self, path: Path) -> None:
        pcm, rate = read_wav(path)
        super().__init__(pcm, rate)
        self.path = path
        log.debug("input file %s: %d Hz, %.2f s", path, rate, self.duration_s)


def read_wav(path: Path) -> tuple[Pcm, int]:
    """Samples (``(n,)`` mono or ``(n, channels)``, int16) and rate of a PCM WAV file, or :class:`AudioError`.

    A data chunk whose declared size runs past the end of the file (a recording cut short) is read up to the
    last whole sample.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise AudioError(f"input file {path} does not exist: check the path given to --input-file") from exc
    except OSError as exc:
        raise AudioError(f"cannot read input file {path}: {exc.strerror or exc}") from exc
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"input file {path} is not a WAV file (no RIFF/WAVE header); {_CONVERT_HINT}")
    fmt: tuple[int, int, int, int] | None = None  # (format tag, channels, rate, bits)
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(path, data[body : body + size])
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError(f"input file {path} is damaged (data before format chunk); {_CONVERT_HINT}")
            return _decode(path, data[body : body + size], *fmt)
        pos = body + size + (size & 1)  # chunks are padded to an even length
    raise AudioError(f"input file {path} is damaged (no {'data' if fmt else 'fmt'} chunk); {_CONVERT_HINT}")


def _parse_fmt(path: Path, body: bytes) -> tuple[int, int, int, int]:
    if len(body) < 16:
        raise AudioError(f"input file {path} is damaged (short format chunk); {_CONVERT_HINT}")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _FORMAT_EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack_from("<H", body, 24)[0]  # the first two bytes of the sub-format GUID
    if tag == _FORMAT_FLOAT:
        raise AudioError(f"input file {path} holds floating-point samples, not PCM; {_CONVERT_HINT}")
    if tag != _FORMAT_PCM:
        raise AudioError(f"input file {path} is compressed (format 0x{tag:04x}), not PCM; {_CONVERT_HINT}")
    if bits not in (8, 16, 24, 32) or channels < 1 or rate < 1:
        raise AudioError(f"input file {path} has {bits}-bit samples at {rate} Hz, not 8/16/24/32; {_CONVERT_HINT}")
    return tag, channels, rate, bits


def _decode(path: Path, raw: bytes, _tag: int, channels: int, rate: int, bits: int) -> tuple[Pcm, int]:
    width = bits // 8
    usable = len(raw) // (width * channels) * width * channels
    buf = np.frombuffer(raw, dtype=np.uint8, count=usable)
    if width == 1:  # 8-bit WAV is unsigned
        samples = ((buf.astype(np.int16) - 128) << 8).astype(np.int16)
    elif width == 2:
        samples = buf.view("<i2").astype(np.int16)
    elif width == 3:  # keep the top 16 of 24 bits: bytes 1 and 2 of each little-endian triple
        triples = buf.reshape(-1, 3)
        samples = (triples[:, 1].astype(np.uint16) | (triples[:, 2].astype(np.uint16) << 8)).view(np.int16)
    else:
        samples = (buf.view("<i4") >> 16).astype(np.int16)
    pcm = samples if channels == 1 else samples.reshape(-1, channels)
    if usable != len(raw):
        log.debug("input file %s: data chunk cut short, read %d of %d bytes", path, usable, len(raw))
    return np.ascontiguousarray(pcm), rate


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
