"""Windows: the call's audio by WASAPI loopback, through PyAudioWPatch (the optional extra
``voicecoach[windows-loopback]``), behind :mod:`voicecoach.audio.loopback`'s interface.

Why PyAudioWPatch: sounddevice's Windows PortAudio has no WASAPI loopback (no PortAudio release does yet);
PyAudioWPatch lists every output endpoint again as an input "... [Loopback]" (next-wave.md §1.3). It is
imported lazily, only here, so that nothing else needs it.

WASAPI loopback delivers *no packets while the endpoint is silent*, so ``read`` is paced by the wall clock and
returns silence for a frame whose time has passed with no audio. The callback (PortAudio's thread) only copies
its bytes and hands them to the loop, like :class:`~voicecoach.audio.devices.DeviceSource`'s.

Tested here only with a fake module (tests/audio/test_loopback.py): it cannot run off Windows.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import deque
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import DeviceNotFound, DeviceUnavailable
from .frames import FRAME_MS, INPUT_BLOCK_MS, WIRE_FRAME_SAMPLES, FrameChunker, Pcm, Resampler, downmix, silence

log = logging.getLogger(__name__)

FRAME_S = FRAME_MS / 1000
SILENCE_GRACE_S = 0.06  # a frame this late with no audio is taken as silence (WASAPI sends nothing then)
MAX_QUEUE_FRAMES = 10  # 200 ms kept for a slow reader, like the mic
EXTRA_HINT = "pip install 'voicecoach[windows-loopback]'"


def _module() -> ModuleType:
    try:
        return importlib.import_module("pyaudiowpatch")
    except ImportError as exc:
        raise DeviceUnavailable(f"WASAPI loopback needs PyAudioWPatch: {EXTRA_HINT}") from exc


def _devices(pa: Any) -> list[dict[str, Any]]:
    return [dict(d) for d in pa.get_loopback_device_info_generator()]


def candidates() -> list[Any]:
    """The loopback devices, as :class:`~voicecoach.audio.loopback.LoopbackCandidate` (auto: the default's)."""
    from .loopback import LoopbackCandidate

    pa = _module().PyAudio()
    try:
        found = _devices(pa)
        try:
            default = int(pa.get_default_wasapi_loopback()["index"])
        except (LookupError, OSError):
            default = None
    finally:
        pa.terminate()
    return [LoopbackCandidate(str(d["name"]), f"WASAPI {d['index']}", int(d["index"]) == default) for d in found]


def open_loopback(spec: str | None) -> WasapiLoopbackSource:
    """The loopback of the default output (``spec`` None), or of the one whose name contains ``spec``."""
    mod = _module()
    pa = mod.PyAudio()
    try:
        if spec is None:
            try:
                info = dict(pa.get_default_wasapi_loopback())
            except (LookupError, OSError) as exc:
                raise DeviceNotFound(f"Windows reports no default output to capture ({exc})") from exc
        else:
            every = _devices(pa)
            needle = spec.lower()
            found = [d for d in every if needle in str(d["name"]).lower()]
            if len(found) != 1:
                names = ", ".join(str(d["name"]) for d in (found or every)) or "none"
                what = "matches several loopback devices" if found else "matches no loopback device"
                raise DeviceNotFound(f"--them-device {spec!r} {what}; candidates: {names} (see `voicecoach devices`)")
            info = found[0]
        return WasapiLoopbackSource(mod, pa, info)
    except BaseException:
        pa.terminate()
        raise


class WasapiLoopbackSource:
    """A :class:`~voicecoach.audio.loopback.ThemSource` on one WASAPI loopback device (owns ``pa``)."""

    realtime = True

    def __init__(self, mod: ModuleType, pa: Any, info: dict[str, Any]) -> None:
        self._mod = mod
        self._pa = pa
        self.description = f"WASAPI loopback {info['name']}"
        self.rate = int(info["defaultSampleRate"])
        self.channels = max(1, int(info["maxInputChannels"]))
        self._resampler = Resampler(self.rate, 1, 48_000, 1)
        self._chunker = FrameChunker(WIRE_FRAME_SAMPLES)
        self._frames: deque[tuple[Pcm, float]] = deque(maxlen=MAX_QUEUE_FRAMES)
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next: float | None = None  # when the next frame is due, by the wall clock
        self.frame_time: float | None = None
        self.silent_frames = 0  # frames returned as silence because WASAPI delivered nothing in time
        self._closed = False
        try:
            self._stream = pa.open(
                format=mod.paInt16,
                channels=self.channels,
                rate=self.rate,
                input=True,
                input_device_index=int(info["index"]),
                frames_per_buffer=self.rate * INPUT_BLOCK_MS // 1000,
                stream_callback=self._callback,
                start=False,
            )
        except (OSError, ValueError) as exc:
            raise DeviceUnavailable(f"cannot open {self.description} at {self.rate} Hz: {exc}") from exc

    def _callback(self, data: bytes, frames: int, time_info: Any, status: int) -> tuple[None, int]:
        # Audio thread: copy and hand off, nothing else.
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._on_block, bytes(data), time.monotonic())
            except RuntimeError:  # the loop closed while the stream still ran
                pass
        return None, int(self._mod.paContinue)

    def _on_block(self, data: bytes, at: float) -> None:
        pcm = np.frombuffer(data, dtype="<i2").astype(np.int16).reshape(-1, self.channels)
        for frame in self._chunker.push(self._resampler.process(downmix(pcm))):
            self._frames.append((frame, at))
        self._ready.set()

    async def read(self) -> Pcm:
        if self._closed:
            raise DeviceUnavailable(f"{self.description} is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._stream.start_stream()
            self._next = time.monotonic() + FRAME_S
        assert self._next is not None
        while not self._frames:
            left = self._next + SILENCE_GRACE_S - time.monotonic()
            if left <= 0:  # nothing came: the endpoint is silent, so is this frame
                self.frame_time = self._next - FRAME_S
                self._next += FRAME_S
                self.silent_frames += 1
                return silence(WIRE_FRAME_SAMPLES)
            self._ready.clear()
            try:
                async with asyncio.timeout(left):
                    await self._ready.wait()
            except TimeoutError:
                pass
            if self._closed:
                raise DeviceUnavailable(f"{self.description} is closed")
        frame, at = self._frames.popleft()
        self.frame_time = at - FRAME_S
        self._next = max(self._next + FRAME_S, at + FRAME_S)
        return frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        try:
            self._stream.stop_stream()
            self._stream.close()
        finally:
            self._pa.terminate()

    async def aclose(self) -> None:
        self.close()
