"""Sound devices: the only module that imports sounddevice, and only inside functions.

Importing sounddevice loads the PortAudio shared library, which may be missing; file-only runs and every test
that needs no device must work without it, so nothing here touches sounddevice at import time. Failures are
translated to :mod:`voicecoach.errors` at this boundary.

The audio callbacks are a one-way handoff (design §5.5): the input callback copies its block and schedules it
on the event loop; the output callback calls the Player's ``pull`` (a lock-free ring). Neither logs, awaits,
or allocates more than one small block.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from ..errors import AudioError, DeviceNotFound, DeviceUnavailable, PortAudioMissing
from . import alsa
from .base import FrameSink, FrameSource
from .files import FileSource, WavSink
from .frames import INPUT_BLOCK_MS, OUTPUT_LATENCY_S, WIRE_FRAME_SAMPLES, WIRE_RATE, FrameChunker, Pcm, Resampler
from .playout import PlayoutBuffer

log = logging.getLogger(__name__)

PORTAUDIO_MISSING = (
    "PortAudio library not found: install it with `apt-get install libportaudio2` (or brew install portaudio), "
    "or use --input-file/--output-file"
)
MAX_QUEUE_MS = 200  # mic frames kept for a slow reader; older ones are dropped so latency cannot grow
# Held while a stream opens. The ALSA pulse plugin reads PULSE_SOURCE (process-wide) when a PCM opens, and
# audio.loopback sets it for the call's monitor: holding this keeps another stream's open from seeing it.
OPEN_LOCK = threading.RLock()

Kind = Literal["input", "output"]


def _import_sounddevice() -> ModuleType:
    alsa.install()  # before PortAudio initializes: its device scan is the first thing ALSA reports on
    return importlib.import_module("sounddevice")


def _sounddevice() -> Any:
    """The sounddevice module, or :class:`PortAudioMissing` (it raises OSError when PortAudio is absent)."""
    try:
        return _import_sounddevice()
    except OSError as exc:
        raise PortAudioMissing(PORTAUDIO_MISSING) from exc
    except ImportError as exc:
        raise PortAudioMissing(f"the sounddevice package is missing ({exc}); {PORTAUDIO_MISSING}") from exc


def rescan_devices() -> None:
    """Re-initialize PortAudio so it sees devices that appeared after import (e.g. a sound server started later).

    PortAudio enumerates devices once, when initialized; sounddevice exposes no public way to redo that, so
    this uses its private ``_terminate``/``_initialize``. Streams that are open must be closed first.
    """
    sd = _sounddevice()
    sd._terminate()
    sd._initialize()


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool
    is_default_output: bool

    def channels(self, kind: Kind) -> int:
        return self.max_input_channels if kind == "input" else self.max_output_channels


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio knows (empty when there is no sound server or card)."""
    sd = _sounddevice()
    try:
        raw = sd.query_devices()
        default_in, default_out = (int(i) for i in sd.default.device)
    except sd.PortAudioError as exc:
        raise DeviceUnavailable(f"cannot list audio devices: {exc}") from exc
    return [
        DeviceInfo(
            index=i,
            name=str(d["name"]),
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_samplerate=float(d["default_samplerate"]),
            is_default_input=i == default_in,
            is_default_output=i == default_out,
        )
        for i, d in enumerate(raw)
    ]


def resolve_device(spec: str | int | None, kind: Kind) -> DeviceInfo:
    """The device for ``spec``: an index, a case-insensitive name substring (an exact name wins), or None for
    the system default. Raises :class:`DeviceNotFound` with a short listing of the ``kind`` devices."""
    usable = [d for d in list_devices() if d.channels(kind) > 0]
    if spec is None:
        found = [d for d in usable if (d.is_default_input if kind == "input" else d.is_default_output)]
        what = f"no default {kind} device"
    elif isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        found = [d for d in usable if d.index == index]
        what = f"no {kind} device with index {index}"
    else:
        needle = spec.strip().lower()
        found = [d for d in usable if d.name.lower() == needle] or [d for d in usable if needle in d.name.lower()]
        what = f"no {kind} device matches {spec!r}"
        if len(found) > 1:
            names = ", ".join(f"{d.index} {d.name}" for d in found)
            raise DeviceNotFound(f"{spec!r} matches several {kind} devices ({names}): give the index instead")
    if not found:
        raise DeviceNotFound(f"{what}; {_brief(usable, kind)}")
    return found[0]


def _brief(devices: list[DeviceInfo], kind: Kind) -> str:
    flag = "--input-file" if kind == "input" else "--output-file"
    if not devices:
        return f"there are no audio {kind} devices (no sound card or server?); use {flag}"
    names = ", ".join(f"{d.index} {d.name}" for d in devices[:8]) + (", ..." if len(devices) > 8 else "")
    return f"available: {names} (see `voicecoach devices`), or use {flag}"


def format_device_table(devices: list[DeviceInfo]) -> str:
    """A table for ``voicecoach devices``: index, name, channels, default rate, and which are the defaults."""
    if not devices:
        return "no audio devices found (no sound card or sound server?): use --input-file/--output-file"
    width = max(4, *(len(d.name) for d in devices))
    lines = [f"{'#':>3}  {'name':<{width}}  {'in':>3}  {'out':>3}  {'rate':>6}  default"]
    for d in devices:
        marks = ", ".join(m for m, on in (("input", d.is_default_input), ("output", d.is_default_output)) if on)
        lines.append(
            f"{d.index:>3}  {d.name:<{width}}  {d.max_input_channels:>3}  {d.max_output_channels:>3}  "
            f"{d.default_samplerate:>6.0f}  {marks}".rstrip()
        )
    return "\n".join(lines)


def _open_stream(factory: Callable[..., Any], device: DeviceInfo, kind: Kind, **kwargs: Any) -> Any:
    sd = _sounddevice()
    try:
        with OPEN_LOCK:
            return factory(device=device.index, dtype="int16", **kwargs)
    except (sd.PortAudioError, ValueError) as exc:
        raise DeviceUnavailable(
            f"cannot open {kind} device {device.index} ({device.name}) at {kwargs.get('samplerate')} Hz: {exc}; "
            "close programs that use it or pick another one (see `voicecoach devices`)"
        ) from exc


class DeviceSource:
    """A :class:`FrameSource` from a sound card, realtime: ``read`` waits for the next 20 ms frame.

    The stream is opened (and the device checked) at construction but started on the first ``read``, so
    nothing queues up before the mic gate opens. Frames older than ``MAX_QUEUE_MS`` are dropped (``dropped``
    counts them). ``last_latency_s``: from the callback that completed a frame to ``read`` returning it;
    ``last_frame_at``: the ``time.monotonic()`` of that callback (the frame's last sample had been captured);
    ``frame_time``: the monotonic time the frame just read began at the microphone, from PortAudio's
    ``inputBufferAdcTime`` where the host reports it, else from the stream's latency.
    """

    realtime = True

    def __init__(self, device: DeviceInfo) -> None:
        sd = _sounddevice()
        self.device = device
        self.rate = int(device.default_samplerate)
        self._stream = _open_stream(
            sd.InputStream,
            device,
            "input",
            samplerate=self.rate,
            channels=1,
            blocksize=self.rate * INPUT_BLOCK_MS // 1000,
            latency="low",
            callback=self._callback,
            finished_callback=self._finished_callback,
        )
        self.input_latency = float(self._stream.latency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resampler = Resampler(self.rate, 1, 48_000, 1)
        self._chunker = FrameChunker(WIRE_FRAME_SAMPLES)
        self._frames: deque[tuple[Pcm, float, float]] = deque(maxlen=MAX_QUEUE_MS // 20)
        self._ready = asyncio.Event()
        self._error: AudioError | None = None
        self.status_flags = 0  # callbacks that reported an overflow (audio lost inside PortAudio)
        self.dropped = 0
        self.last_latency_s: float | None = None
        self.last_frame_at: float | None = None
        self.frame_time: float | None = None
        log.debug("input device %d (%s) at %d Hz", device.index, device.name, self.rate)

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # Audio thread: count, copy (PortAudio reuses indata), hand off. Nothing else.
        if status:
            self.status_flags += 1
        loop = self._loop
        if loop is not None:
            try:
                at = time.monotonic()
                loop.call_soon_threadsafe(self._on_block, indata[:, 0].copy(), at, _adc_time(time_info, at))
            except RuntimeError:  # the loop closed while the stream was still running: nobody is listening
                pass

    def _finished_callback(self) -> None:
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._on_finished)
            except RuntimeError:  # same as above
                pass

    def _on_block(self, block: Pcm, at: float, adc: float | None) -> None:
        # The block's first sample was captured at `adc` (or one latency and one block before `at`); the
        # first frame cut here began with the samples still pending from earlier blocks.
        began = adc if adc is not None else at - self.input_latency - block.size / self.rate
        began -= self._chunker.pending / WIRE_RATE
        for k, frame in enumerate(self._chunker.push(self._resampler.process(block))):
            if len(self._frames) == self._frames.maxlen:
                self.dropped += 1
            self._frames.append((frame, at, began + k * WIRE_FRAME_SAMPLES / WIRE_RATE))
        self._ready.set()

    def _on_finished(self) -> None:
        if self._error is None:
            self._error = DeviceUnavailable(f"input device {self.device.index} ({self.device.name}) stopped")
        self._ready.set()

    async def read(self) -> Pcm:
        if self._error is not None:
            raise self._error
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._start()
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
            if self._error is not None:
                raise self._error
        frame, at, self.frame_time = self._frames.popleft()
        self.last_frame_at = at
        self.last_latency_s = time.monotonic() - at
        return frame

    def _start(self) -> None:
        sd = _sounddevice()
        try:
            self._stream.start()
        except sd.PortAudioError as exc:
            self._error = DeviceUnavailable(f"cannot start input device {self.device.index}: {exc}")
            raise self._error from exc

    def close(self) -> None:
        if self._error is None:
            self._error = DeviceUnavailable(f"input device {self.device.index} ({self.device.name}) is closed")
        self._ready.set()
        self._stream.close(ignore_errors=True)


class DeviceSink:
    """A :class:`FrameSink` to a sound card, and a :class:`~voicecoach.audio.files.PullSink`.

    The stream runs from construction, silent until a Player calls ``start(pull)``; then the Player's buffer
    feeds the callback directly. ``write`` (for plain use, e.g.
    benchmarks) queues into a buffer of the sink's own with no pre-buffer. Plays at the device's native rate,
    stereo when the device has two channels. ``callback_errors`` counts blocks a failing ``pull`` left silent;
    ``output_underflows`` counts blocks the host asked for too late (PortAudio's ``output_underflow`` flag: what
    ALSA reports as "underrun occurred", see :mod:`voicecoach.audio.alsa`), from the first ``start(pull)`` on,
    since the stream's own start-up underflows happen before there is anything to lose.
    """

    def __init__(self, device: DeviceInfo) -> None:
        sd = _sounddevice()
        self.device = device
        self.rate = int(device.default_samplerate)
        self.channels = 2 if device.max_output_channels >= 2 else 1
        self._pull: Callable[[Pcm], None] | None = None
        self._own: PlayoutBuffer | None = None
        # What was handed to the speaker, with the monotonic time its first sample plays: the echo canceller's
        # reference (audio.echo). None until someone asks for it; the callback only appends a copy.
        self.played: deque[tuple[Pcm, float]] | None = None
        self.on_played: Callable[[], None] | None = None  # called after each block queued there (thread-safe)
        self.callback_errors = 0
        self.status_flags = 0  # callbacks with any status flag set, since the stream opened
        self.output_underflows = 0
        self._stream = _open_stream(
            sd.OutputStream,
            device,
            "output",
            samplerate=self.rate,
            channels=self.channels,
            blocksize=0,
            latency=OUTPUT_LATENCY_S,
            callback=self._callback,
        )
        self.output_latency = float(self._stream.latency)
        # Start now, playing silence: the first blocks after a start can underflow (seen on PulseAudio), and
        # that must happen before there is anything to lose.
        try:
            self._stream.start()
        except sd.PortAudioError as exc:
            self._stream.close(ignore_errors=True)
            raise DeviceUnavailable(f"cannot start output device {device.index} ({device.name}): {exc}") from exc
        log.debug(
            "output device %d (%s) at %d Hz, latency %.1f ms",
            device.index,
            device.name,
            self.rate,
            self.output_latency * 1000,
        )

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        # Audio thread: fill from the ring; an exception here would abort the stream, so it becomes silence.
        pull = self._pull
        if status:
            self.status_flags += 1
            if pull is not None and status.output_underflow:
                self.output_underflows += 1
        if pull is None:
            outdata.fill(0)
            return
        try:
            pull(outdata)
        except Exception:
            outdata.fill(0)
            self.callback_errors += 1
        played = self.played
        if played is not None:
            at = time.monotonic()
            played.append((outdata.copy(), _dac_time(time_info, at, self.output_latency)))
            notify = self.on_played
            if notify is not None:
                notify()

    def start(self, pull: Callable[[Pcm], None]) -> None:
        """From now on the callback fills every block with ``pull`` (the stream itself is already running)."""
        self._pull = pull

    def write(self, pcm: Pcm) -> None:
        if self._own is None:
            self._own = PlayoutBuffer(self.rate, self.channels, prebuffer_ms=0)
            self.start(self._own.pull)
        self._own.push(pcm)

    @property
    def underruns(self) -> int:
        """Underruns of the sink's own buffer (``write``); a Player counts its own."""
        return self._own.underruns if self._own is not None else 0

    def close(self) -> None:
        self._pull = None
        self._stream.close(ignore_errors=True)
        alsa.log_messages()


def _adc_time(time_info: Any, now: float) -> float | None:
    """When the input block's first sample was captured, as ``time.monotonic()`` (None: the host does not say).

    PortAudio's times are on the stream's own clock; only their difference from ``currentTime`` is used."""
    current, adc = float(time_info.currentTime), float(time_info.inputBufferAdcTime)
    return now - (current - adc) if current > 0 and 0 < adc <= current else None


def _dac_time(time_info: Any, now: float, latency: float) -> float:
    """When the output block's first sample reaches the speaker, as ``time.monotonic()``."""
    current, dac = float(time_info.currentTime), float(time_info.outputBufferDacTime)
    return now + (dac - current) if current > 0 and dac >= current else now + latency


def open_source(input_file: Path | None, input_device: str | None, *, loop: bool = False) -> FrameSource:
    """The input: the audio file if given (streamed; ``loop``: start again at its end), else the device (None:
    the system default)."""
    if input_file is not None:
        return FileSource(input_file, loop=loop)
    return DeviceSource(resolve_device(input_device, "input"))


def open_sink(output_file: Path | None, output_device: str | None, *, rate: int = 24000) -> FrameSink:
    """The output: a WAV file at ``rate`` if given, else the device (None: the default) at its native rate."""
    if output_file is not None:
        return WavSink(output_file, rate)
    return DeviceSink(resolve_device(output_device, "output"))
