"""Output sinks for the interrupt benchmark: the file sink always, the real device sink when it can exist.

The device is PulseAudio's virtual ``vspeaker`` null sink, started by ``tests/audio/pulse.py`` (the same
recipe as ``scripts/with-virtual-audio`` and the device tests). PortAudio reads the sound server's address
when it initializes, so the daemon's variables go into this process's environment first and PortAudio is
re-initialized; the environment is restored afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from benchlib.common import ROOT
from benchlib.live import RecordingFileSink, RecordingPullSink
from voicecoach.audio.files import WavSink
from voicecoach.errors import VoicecoachError

PULSE_HELPER = ROOT / "tests" / "audio" / "pulse.py"


def file_sink(tmp: Path, rate: int = 24000) -> RecordingFileSink:
    """What ``--output-file`` opens (a 24 kHz mono WAV), with a block log."""
    return RecordingFileSink(WavSink(tmp / f"bench-out-{time.monotonic_ns()}.wav", rate))


def _pulse_helper() -> ModuleType:
    spec = importlib.util.spec_from_file_location("voicecoach_bench_pulse", PULSE_HELPER)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(PULSE_HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def virtual_device() -> Iterator[str | None]:
    """Run a private PulseAudio daemon for the duration; yields None when ready, else why it cannot run."""
    if not PULSE_HELPER.exists():
        yield f"{PULSE_HELPER} is missing"
        return
    pulse = _pulse_helper()
    reason: str | None = pulse.missing_reason()
    if reason is not None:
        yield reason
        return
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as root:
        audio = pulse.VirtualAudio(Path(root))
        try:
            audio.start()
        except (OSError, TimeoutError, RuntimeError) as exc:
            yield f"the virtual PulseAudio devices did not start: {exc}"
            return
        try:
            os.environ.update(audio.env)
            yield None
        finally:
            os.environ.clear()
            os.environ.update(saved)
            audio.stop()


def device_sink() -> RecordingPullSink:
    """The default output device (``vspeaker`` inside :func:`virtual_device`) as the runner would open it."""
    from voicecoach.audio.devices import DeviceSink, rescan_devices, resolve_device

    rescan_devices()
    return RecordingPullSink(DeviceSink(resolve_device(None, "output")))


@contextlib.contextmanager
def alsa_messages(into: list[str]) -> Iterator[None]:
    """Collect what C libraries write to file descriptor 2 meanwhile (ALSA reports each underrun recovery
    there); lines that are not ALSA's are passed on to stderr afterwards, so no error is hidden."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.startswith("ALSA lib"):
                    into.append(line)
                else:
                    print(line, file=sys.stderr)


def device_error(exc: BaseException) -> str | None:
    """A reason to skip the device sink for ``exc`` (PortAudio missing, no device...), or None to re-raise."""
    return str(exc) if isinstance(exc, VoicecoachError) else None
