"""The call's audio ("them"): the only module that knows how to find and open the other side of a call.

Call :func:`open_them` with the ``them_device`` setting (``auto``, ``none`` or a name) and ``them_file``. It
returns a :class:`ThemChoice`: a :class:`ThemSource` (the :class:`~voicecoach.audio.base.FrameSource`
interface of the mic: 20 ms frames of 48 kHz mono int16, plus ``frame_time``, the monotonic time the frame's
first sample was captured), or no source and, when ``auto`` found nothing, the one line the runner prints.

Where the call's audio comes from, per system:

* **Linux** (PulseAudio, or PipeWire through pipewire-pulse): the monitor of the *current default sink*,
  resolved by name (``<sink>.monitor``, asked with :mod:`~voicecoach.audio.pactl`). Never
  ``@DEFAULT_MONITOR@``: on PipeWire it connects to the default *source*, i.e. the microphone (measured,
  next-wave.md §1.1). PortAudio lists no monitors, so the stream is sounddevice's ALSA ``pulse`` device opened
  with ``PULSE_SOURCE`` naming the monitor; the variable is process-wide and read when a PCM opens, so it is
  set, the stream opened and the variable restored under :data:`~voicecoach.audio.devices.OPEN_LOCK`, which
  every other stream open takes too. ``auto`` follows the default sink (headphones plugged in): ``pactl
  subscribe`` reports each server change, and the stream is re-opened on the new monitor without ending the
  source (about 10 ms of audio is lost at the switch).
* **macOS**: an input device chosen by name (BlackHole, Loopback: a virtual device the system output is
  routed to); ``auto`` picks the first input whose name says it is one.
* **Windows**: WASAPI loopback of the default output through PyAudioWPatch (:mod:`~voicecoach.audio.wasapi`),
  the optional extra ``voicecoach[windows-loopback]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import AudioError, DeviceNotFound, DeviceUnavailable
from . import devices, pactl
from .files import FileSource
from .frames import FRAME_MS, Pcm

log = logging.getLogger(__name__)

FRAME_S = FRAME_MS / 1000
PULSE_DEVICE = "pulse"  # the ALSA pulse plugin's PCM, as PortAudio lists it
FOLLOW_RETRY_S = 1.0  # `pactl subscribe` ended (server restarting): ask again this often
SWAP_WAIT_S = 2.0  # a stream that died by itself (its sink vanished) waits this long for the follower
MAC_LOOPBACK_WORDS = ("blackhole", "loopback", "soundflower", "vb-cable", "virtual")
FIX_HINT = "set --them-device to a source from `voicecoach devices`, or --them-device none to hear only you"


class ThemSource(Protocol):
    """A realtime :class:`~voicecoach.audio.base.FrameSource` of the call's audio.

    ``frame_time``: ``time.monotonic()`` when the first sample of the frame last returned by ``read`` was
    captured (None before the first read). ``description``: what is being captured, for the event log.
    ``aclose`` is ``close`` plus awaiting what the source runs (a follower task, a subprocess).
    """

    realtime: bool
    frame_time: float | None

    @property
    def description(self) -> str: ...

    async def read(self) -> Pcm: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ThemChoice:
    """A source, or None with ``notice`` (one line to print) when ``auto`` found nothing; ``none``: neither."""

    source: ThemSource | None
    notice: str | None = None


@dataclass(frozen=True)
class LoopbackCandidate:
    """A source ``--them-device`` can name; ``auto`` marks the one ``auto`` would pick."""

    name: str
    description: str
    auto: bool = False


def open_them(setting: str, *, them_file: Path | None = None, platform: str = sys.platform) -> ThemChoice:
    """The call's audio for ``them_device = setting`` (``them_file`` wins over it).

    ``auto`` that finds no loopback source gives ``ThemChoice(None, notice)``. A name that matches nothing
    raises :class:`DeviceNotFound` listing the candidates; other failures raise :class:`AudioError`.
    """
    if them_file is not None:
        return ThemChoice(FileThemSource(them_file))
    spec = setting.strip()
    if spec.lower() == "none":
        return ThemChoice(None)
    if spec.lower() == "auto":
        try:
            return ThemChoice(_open_auto(platform))
        except AudioError as exc:
            log.debug("no call audio: %s", exc)
            notice = f"not hearing the other side of the call: {exc}; listening to you only ({FIX_HINT})"
            return ThemChoice(None, notice)
    return ThemChoice(_open_named(spec, platform))


def loopback_candidates(platform: str = sys.platform) -> list[LoopbackCandidate]:
    """Every source ``--them-device`` can name here; raises :class:`AudioError` when none can be listed."""
    if platform.startswith("linux"):
        default = pactl.default_sink()
        return [
            LoopbackCandidate(s.name, s.description, s.monitor_of == default)
            for s in pactl.sources()
            if s.monitor_of is not None
        ]
    if platform == "darwin":
        inputs = [d for d in devices.list_devices() if d.max_input_channels > 0]
        auto = _mac_auto(inputs)
        return [LoopbackCandidate(d.name, f"input device {d.index}", d == auto) for d in inputs if _mac_like(d.name)]
    if platform == "win32":
        from . import wasapi

        return wasapi.candidates()
    raise DeviceUnavailable(f"no loopback capture on {platform}; use --them-file or --them-device none")


def format_loopback_table(platform: str = sys.platform) -> str:
    """The loopback section of ``voicecoach devices``: one row per candidate, ``auto`` marking the pick."""
    try:
        found = loopback_candidates(platform)
    except AudioError as exc:
        return f"loopback sources (--them-device): none ({exc})"
    if not found:
        return f"loopback sources (--them-device): none found; {FIX_HINT}"
    width = max(4, *(len(c.name) for c in found))
    lines = [f"loopback sources (--them-device)\n  {'name':<{width}}  {'description':<24}  auto"]
    lines += [f"  {c.name:<{width}}  {c.description:<24}  {'<- auto' if c.auto else ''}".rstrip() for c in found]
    return "\n".join(lines)


def _open_auto(platform: str) -> ThemSource:
    if platform.startswith("linux"):
        sink = pactl.default_sink()
        return PulseMonitorSource(f"{sink}.monitor", sink=sink, follow=True)
    if platform == "darwin":
        device = _mac_auto([d for d in devices.list_devices() if d.max_input_channels > 0])
        if device is None:
            raise DeviceNotFound("no loopback input device (BlackHole, Loopback) is installed; see the README")
        return DeviceThemSource(devices.DeviceSource(device), f"input device {device.name}")
    if platform == "win32":
        from . import wasapi

        return wasapi.open_loopback(None)
    raise DeviceUnavailable(f"no loopback capture on {platform}")


def _open_named(spec: str, platform: str) -> ThemSource:
    if platform.startswith("linux"):
        source = _pulse_source_named(spec)
        return PulseMonitorSource(source.name, sink=source.monitor_of, follow=False)
    if platform == "darwin":
        inputs = [d for d in devices.list_devices() if d.max_input_channels > 0]
        needle = spec.lower()
        found = [d for d in inputs if d.name.lower() == needle] or [d for d in inputs if needle in d.name.lower()]
        if len(found) != 1:
            names = ", ".join(d.name for d in (found or inputs)) or "none"
            what = "matches several input devices" if found else "matches no input device"
            raise DeviceNotFound(f"--them-device {spec!r} {what}; candidates: {names} (see `voicecoach devices`)")
        return DeviceThemSource(devices.DeviceSource(found[0]), f"input device {found[0].name}")
    if platform == "win32":
        from . import wasapi

        return wasapi.open_loopback(spec)
    raise DeviceUnavailable(f"no loopback capture on {platform}; use --them-file or --them-device none")


def _pulse_source_named(spec: str) -> pactl.PulseSource:
    """A source by exact name, by the sink it monitors, or by part of a monitor's name or description."""
    every = pactl.sources()
    monitors = [s for s in every if s.monitor_of is not None]
    needle = spec.lower()
    found = [s for s in every if needle in (s.name.lower(), (s.monitor_of or "").lower())] or [
        s for s in monitors if needle in s.name.lower() or needle in s.description.lower()
    ]
    if len(found) > 1:
        names = ", ".join(s.name for s in found)
        raise DeviceNotFound(f"--them-device {spec!r} matches several sources ({names}): give the full name")
    if not found:
        names = ", ".join(f"{s.name} ({s.description})" for s in monitors) or "none"
        raise DeviceNotFound(
            f"--them-device {spec!r} matches no loopback source; candidates: {names}, or auto or none "
            "(see `voicecoach devices`)"
        )
    return found[0]


def _mac_like(name: str) -> bool:
    return any(word in name.lower() for word in MAC_LOOPBACK_WORDS)


def _mac_auto(inputs: list[devices.DeviceInfo]) -> devices.DeviceInfo | None:
    return next((d for d in inputs if _mac_like(d.name)), None)


def open_pulse_stream(source_name: str) -> devices.DeviceSource:
    """An input stream on the sound server's source ``source_name``, through the ALSA ``pulse`` device.

    ``PULSE_SOURCE`` is set only while the stream opens (the plugin reads it then), and restored after, under
    the lock every stream open takes, so the mic opened before or after is not moved with it.
    """
    with devices.OPEN_LOCK:
        saved = os.environ.get("PULSE_SOURCE")
        os.environ["PULSE_SOURCE"] = source_name
        try:
            try:
                device = devices.resolve_device(PULSE_DEVICE, "input")
            except DeviceNotFound as exc:
                raise DeviceUnavailable(
                    "PortAudio has no ALSA `pulse` device: install the ALSA pulse plugin "
                    "(Debian: libasound2-plugins, Fedora: alsa-plugins-pulseaudio)"
                ) from exc
            return devices.DeviceSource(device)
        finally:
            if saved is None:
                os.environ.pop("PULSE_SOURCE", None)
            else:
                os.environ["PULSE_SOURCE"] = saved


class DeviceThemSource:
    """A :class:`ThemSource` over one device stream (macOS virtual input, or a fixed pulse source)."""

    realtime = True

    def __init__(self, inner: devices.DeviceSource, description: str) -> None:
        self._inner = inner
        self.description = description
        self.frame_time: float | None = None

    async def read(self) -> Pcm:
        frame = await self._inner.read()
        self.frame_time = self._inner.frame_time
        return frame

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        self.close()


class PulseMonitorSource:
    """A :class:`ThemSource` on a pulse source; with ``follow``, on the monitor of whatever sink is default.

    The follower (a task owned by this source, started by the first ``read``) re-resolves the default sink on
    every server change ``pactl subscribe`` reports, opens the new monitor first and then closes the old
    stream, so ``read`` goes on from the new one. ``switches`` counts the moves.
    """

    realtime = True

    def __init__(self, monitor: str, *, sink: str | None, follow: bool) -> None:
        self.monitor = monitor
        self.sink = sink
        self.follow = follow
        self.switches = 0
        self.frame_time: float | None = None
        self._inner = open_pulse_stream(monitor)
        self._swapped = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._closed = False
        log.debug("call audio from %s (follow the default sink: %s)", monitor, follow)

    @property
    def description(self) -> str:
        return f"{self.monitor} (the default sink's monitor)" if self.follow else self.monitor

    @property
    def last_latency_s(self) -> float | None:
        return self._inner.last_latency_s

    async def read(self) -> Pcm:
        if self.follow and self._follower is None and not self._closed:
            self._follower = asyncio.create_task(self._follow(), name="them-default-sink")
        while True:
            inner = self._inner
            try:
                frame = await inner.read()
            except AudioError:
                if self._closed:
                    raise
                if inner is self._inner:  # it ended by itself (its sink vanished): the follower may move us
                    if not self.follow:
                        raise
                    self._swapped.clear()
                    try:
                        async with asyncio.timeout(SWAP_WAIT_S):
                            await self._swapped.wait()
                    except TimeoutError:
                        raise DeviceUnavailable(f"the call's audio ({self.monitor}) stopped") from None
                continue
            if inner is not self._inner:
                continue  # a frame the old stream still held after a switch
            self.frame_time = inner.frame_time
            return frame

    async def _follow(self) -> None:
        while not self._closed:
            try:
                await self._check()
                async with contextlib.aclosing(pactl.server_changes()) as changes:
                    async for _ in changes:
                        await self._check()
            except pactl.PulseUnavailable as exc:
                log.debug("following the default sink: %s", exc)
            await asyncio.sleep(FOLLOW_RETRY_S)

    async def _check(self) -> None:
        try:
            sink = await pactl.default_sink_async()
        except pactl.PulseUnavailable as exc:
            log.debug("default sink unknown: %s", exc)
            return
        if sink == self.sink or self._closed:
            return
        started = time.monotonic()
        try:
            new = open_pulse_stream(f"{sink}.monitor")
        except AudioError as exc:
            log.warning("the default sink is now %s, but its monitor cannot be opened: %s", sink, exc)
            return
        old, self._inner = self._inner, new
        self.sink, self.monitor = sink, f"{sink}.monitor"
        self.switches += 1
        self._swapped.set()
        old.close()
        log.debug("call audio moved to %s (opened in %.0f ms)", self.monitor, (time.monotonic() - started) * 1000)

    def close(self) -> None:
        self._closed = True
        if self._follower is not None:
            self._follower.cancel()
        self._inner.close()

    async def aclose(self) -> None:
        self.close()
        if self._follower is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None


class FileThemSource:
    """The call's audio from a file (``--them-file``), paced in real time by ``read`` itself.

    Frame ``n`` is returned once its 20 ms have passed since the first read, and ``frame_time`` is when it
    began, so the file behaves like a device whose capture started at the first read. ``ended`` is the
    file's (see :class:`~voicecoach.audio.files.FileSource`); after it, reads return silence, still paced.
    """

    realtime = True

    def __init__(self, path: Path) -> None:
        try:
            self._file = FileSource(path)
        except AudioError as exc:
            raise AudioError(str(exc).replace("--input-file", "--them-file")) from exc
        self.description = f"file {path}"
        self.ended = self._file.ended
        self.frame_time: float | None = None
        self._start: float | None = None
        self._count = 0

    async def read(self) -> Pcm:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        began = self._start + self._count * FRAME_S
        delay = began + FRAME_S - now
        if delay > 0:
            await asyncio.sleep(delay)
        self._count += 1
        self.frame_time = began
        return await self._file.read()

    def close(self) -> None:
        self._file.close()

    async def aclose(self) -> None:
        self.close()
