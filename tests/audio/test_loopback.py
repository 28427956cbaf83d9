"""The call's audio (audio/loopback.py): real capture on the private PulseAudio, the fallbacks, and Windows with a
fake PyAudioWPatch.

On the daemon (pulse.py) two more null sinks are loaded: ``vcall`` (made the default sink: the call plays there)
and ``vheadphones`` (the default moves to it mid-call). The mic stays ``vmic.monitor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pulse
import pytest
from audiofakes import BOUND_S, tone, wait_for

from voicecoach.audio import devices, loopback, pactl
from voicecoach.audio.files import WavSink, read_wav
from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, envelope, resample
from voicecoach.audio.loopback import FileThemSource, PulseMonitorSource, ThemSource, open_them
from voicecoach.errors import AudioError, DeviceNotFound

CALL_SINKS = ("vcall", "vheadphones")
SPEECH = "Tell me about a project you are proud of."


def best_correlation(recorded: np.ndarray, reference: np.ndarray) -> float:
    n = reference.size
    assert recorded.size >= n, "the recording is shorter than what was played"
    return max(float(np.corrcoef(recorded[lag : lag + n], reference)[0, 1]) for lag in range(recorded.size - n + 1))


def pactl_run(audio: pulse.VirtualAudio, *args: str) -> str:
    done = subprocess.run(["pactl", *args], env=audio.child_env(), capture_output=True, text=True, timeout=5)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def call_sinks(virtual_audio: pulse.VirtualAudio) -> Iterator[pulse.VirtualAudio]:
    """``vcall`` and ``vheadphones`` on the daemon, each with a keeper (an idle null sink stalls new streams)."""
    modules, keepers = [], []
    try:
        for sink in CALL_SINKS:
            modules.append(
                pactl_run(virtual_audio, "load-module", "module-null-sink", f"sink_name={sink}",
                          f"sink_properties=device.description={sink.title()}Out", "rate=48000", "channels=2")
            )  # fmt: skip
            keepers.append(virtual_audio._parec(sink, stdout=subprocess.DEVNULL))
        deadline = time.monotonic() + pulse.START_TIMEOUT_S
        for sink in CALL_SINKS:
            virtual_audio._wait_for_flow(sink, deadline)
        yield virtual_audio
    finally:
        for keeper in keepers:
            pulse._end(keeper)
        for module in modules:
            pactl_run(virtual_audio, "unload-module", module)


@pytest.fixture
def call_default(call_sinks: pulse.VirtualAudio) -> Iterator[pulse.VirtualAudio]:
    """``vcall`` is the default sink for the test; vspeaker again after it."""
    pactl_run(call_sinks, "set-default-sink", "vcall")
    try:
        yield call_sinks
    finally:
        pactl_run(call_sinks, "set-default-sink", "vspeaker")


@pytest.fixture
def speech(tmp_path: Path) -> tuple[Path, np.ndarray, int]:
    path = tmp_path / "them.wav"
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), SPEECH], check=True, timeout=30)
        pcm, rate = read_wav(path)
    else:  # a syllable-like on/off pattern: what matters is the envelope
        rate, pcm = 48000, tone(1500, freq=220) * np.repeat(np.arange(15) % 2, 4800)[:72000].astype(np.int16)
        sink = WavSink(path, rate)
        sink.write(pcm)
        sink.close()
    return path, pcm, rate


class Collector:
    """Reads a ThemSource in a task owned by the test, keeping frames, frame times and read latencies."""

    def __init__(self, source: ThemSource) -> None:
        self.source = source
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.latencies: list[float] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.frames.append(await self.source.read())
            assert self.source.frame_time is not None
            self.times.append(self.source.frame_time)
            latency = getattr(self.source, "last_latency_s", None)
            if latency is not None:
                self.latencies.append(latency)

    async def more(self, frames: int) -> None:
        want = len(self.frames) + frames
        await wait_for(lambda: len(self.frames) >= want or self.task.done(), what=f"{frames} more frames")
        if self.task.done():
            self.task.result()  # raises what the reader raised

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def them_auto(call_default: pulse.VirtualAudio) -> AsyncIterator[PulseMonitorSource]:
    choice = open_them("auto")
    assert choice.notice is None and isinstance(choice.source, PulseMonitorSource)
    try:
        yield choice.source
    finally:
        async with asyncio.timeout(BOUND_S):
            await choice.source.aclose()


async def play(audio: pulse.VirtualAudio, path: Path, *device: str) -> None:
    proc = await asyncio.create_subprocess_exec("paplay", *device, str(path), env=audio.child_env())
    async with asyncio.timeout(BOUND_S):
        assert await proc.wait() == 0


async def test_auto_captures_what_the_default_sink_plays(
    call_default: pulse.VirtualAudio, them_auto: PulseMonitorSource, speech: tuple[Path, np.ndarray, int]
) -> None:
    assert them_auto.monitor == "vcall.monitor" and them_auto.sink == "vcall"
    assert "PULSE_SOURCE" not in os.environ, "the variable must be restored once the stream is open"
    path, pcm, rate = speech
    reader = Collector(them_auto)
    try:
        await reader.more(5)
        await play(call_default, path)  # paplay with no device: the default sink, as a call app would
        await reader.more(25)
    finally:
        await reader.stop()
    assert all(f.shape == (WIRE_FRAME_SAMPLES,) for f in reader.frames)
    recorded = envelope(np.concatenate(reader.frames), 48000, 20)
    reference = envelope(resample(pcm, rate, 48000), 48000, 20)
    assert best_correlation(recorded, reference) >= 0.9
    steps = np.diff(reader.times)
    assert np.all(steps > 0) and abs(float(np.median(steps)) - 0.020) < 0.002, "frame times 20 ms apart"
    assert reader.times[-1] < time.monotonic()
    p95 = float(np.percentile(reader.latencies, 95)) * 1000
    print(f"\ncapture callback -> frame read: p50 {np.median(reader.latencies) * 1000:.2f} ms, p95 {p95:.2f} ms")


async def test_auto_does_not_hear_the_microphone(
    call_default: pulse.VirtualAudio, them_auto: PulseMonitorSource, speech: tuple[Path, np.ndarray, int]
) -> None:
    """Speech into the mic (vmic, the default source) must not reach the call's channel: what @DEFAULT_MONITOR@
    gets wrong on PipeWire."""
    reader = Collector(them_auto)
    try:
        await reader.more(5)
        await play(call_default, speech[0], "--device=vmic")
        await reader.more(10)
    finally:
        await reader.stop()
    assert float(np.abs(np.concatenate(reader.frames)).max()) < 100, "the mic's speech leaked into `them`"


async def test_follows_the_default_sink_within_2_s(
    call_default: pulse.VirtualAudio, them_auto: PulseMonitorSource, tmp_path: Path
) -> None:
    beep = tmp_path / "beep.wav"
    sink = WavSink(beep, 48000)
    sink.write(tone(400, freq=880))
    sink.close()
    reader = Collector(them_auto)
    try:
        await reader.more(5)  # the follower is running
        await asyncio.sleep(0.3)  # and subscribed
        changed = time.monotonic()
        pactl_run(call_default, "set-default-sink", "vheadphones")
        await wait_for(lambda: them_auto.sink == "vheadphones", timeout=2.0, what="the switch to vheadphones")
        followed_ms = (time.monotonic() - changed) * 1000
        assert them_auto.monitor == "vheadphones.monitor" and them_auto.switches == 1
        before = len(reader.frames)
        await reader.more(3)
        await play(call_default, beep, "--device=vheadphones")
        await reader.more(10)
    finally:
        await reader.stop()
    heard = np.concatenate(reader.frames[before:])
    assert float(envelope(heard, 48000, 20).max()) > 0.1, "the new monitor's audio never came through"
    print(f"\ndefault sink change followed in {followed_ms:.0f} ms")


def test_a_name_picks_a_monitor_by_name_sink_or_description(call_sinks: pulse.VirtualAudio) -> None:
    for spec in ("vheadphones.monitor", "vheadphones", "VHEADPHONESOUT"):
        choice = open_them(spec)
        assert isinstance(choice.source, PulseMonitorSource)
        try:
            assert choice.source.monitor == "vheadphones.monitor" and not choice.source.follow
        finally:
            choice.source.close()


def test_a_bad_name_is_one_line_listing_the_candidates(call_sinks: pulse.VirtualAudio) -> None:
    with pytest.raises(DeviceNotFound) as info:
        open_them("zoom-speakers")
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    assert "'zoom-speakers'" in message and "--them-device" in message
    for name in ("vcall.monitor", "vheadphones.monitor", "vspeaker.monitor"):
        assert name in message


def test_devices_lists_monitors_and_marks_auto(call_default: pulse.VirtualAudio) -> None:
    table = loopback.format_loopback_table()
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert "<- auto" in rows["vcall.monitor"]
    assert "<- auto" not in rows["vspeaker.monitor"] and "vmic.monitor" in rows


def test_the_mac_path_opens_an_input_device_by_name(virtual_audio: pulse.VirtualAudio) -> None:
    """macOS takes an ordinary input device (BlackHole); here the same sounddevice path opens `pulse`."""
    choice = open_them("pulse", platform="darwin")
    assert isinstance(choice.source, loopback.DeviceThemSource) and choice.source.description.endswith("pulse")
    choice.source.close()


def test_mac_auto_picks_a_blackhole_input(monkeypatch: pytest.MonkeyPatch) -> None:
    def info(index: int, name: str, inputs: int) -> devices.DeviceInfo:
        return devices.DeviceInfo(index, name, inputs, 2, 48000.0, False, False)

    listing = [info(0, "MacBook Pro Microphone", 1), info(1, "BlackHole 2ch", 2), info(2, "Speakers", 0)]
    monkeypatch.setattr(devices, "list_devices", lambda: listing)
    found = loopback.loopback_candidates("darwin")
    assert [(c.name, c.auto) for c in found] == [("BlackHole 2ch", True)]
    monkeypatch.setattr(devices, "list_devices", lambda: listing[:1])
    choice = open_them("auto", platform="darwin")
    assert choice.source is None and choice.notice is not None and "BlackHole" in choice.notice


# --- no sound server: auto falls back with one line ----------------------------------------------------------


def test_auto_without_a_server_falls_back_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/no-such-socket")
    choice = open_them("auto", platform="linux")
    assert choice.source is None and choice.notice is not None and "\n" not in choice.notice
    assert "no PulseAudio or PipeWire server answered" in choice.notice
    assert "--them-device none" in choice.notice


def test_auto_without_pactl_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    choice = open_them("auto", platform="linux")
    assert choice.source is None and choice.notice is not None
    assert "pactl" in choice.notice and "pulseaudio-utils" in choice.notice


def test_a_name_without_a_server_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/no-such-socket")
    with pytest.raises(AudioError, match="no PulseAudio or PipeWire server") as info:
        open_them("vcall", platform="linux")
    assert info.value.exit_code == 2


def test_none_opens_nothing_and_says_nothing() -> None:
    assert open_them("none") == loopback.ThemChoice(None, None)
    assert open_them(" None ") == loopback.ThemChoice(None, None)


def test_pactl_source_listing_parses_monitors(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = (
        "Source #0\n\tState: RUNNING\n\tName: alsa_output.usb.monitor\n\tDescription: Monitor of USB Headset\n"
        "\tMonitor of Sink: alsa_output.usb\nSource #1\n\tName: alsa_input.mic\n\tDescription: Built-in Mic\n"
        "\tMonitor of Sink: n/a\n"
    )
    monkeypatch.setattr(pactl, "_run", lambda *args: listing)
    assert pactl.sources() == [
        pactl.PulseSource("alsa_output.usb.monitor", "Monitor of USB Headset", "alsa_output.usb"),
        pactl.PulseSource("alsa_input.mic", "Built-in Mic", None),
    ]


# --- --them-file ----------------------------------------------------------------------------------------------


async def test_them_file_is_paced_in_real_time(tmp_path: Path) -> None:
    path = tmp_path / "them.wav"
    sink = WavSink(path, 48000)
    sink.write(tone(200))  # 10 frames
    sink.close()
    choice = open_them("none", them_file=path)
    source = choice.source
    assert isinstance(source, FileThemSource) and source.realtime
    started = time.monotonic()
    times = []
    for _ in range(10):
        frame = await source.read()
        assert frame.shape == (WIRE_FRAME_SAMPLES,)
        assert source.frame_time is not None
        times.append(source.frame_time)
    elapsed = time.monotonic() - started
    assert source.ended.is_set()
    assert elapsed >= 0.19, f"10 frames came in {elapsed * 1000:.0f} ms: not paced"
    assert np.allclose(np.diff(times), 0.020)
    source.close()


def test_a_missing_them_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="--them-file"):
        open_them("auto", them_file=tmp_path / "nope.wav")


# --- Windows, with a fake PyAudioWPatch ----------------------------------------------------------------------


class FakeStream:
    def __init__(self, callback: Any, channels: int, rate: int) -> None:
        self.callback, self.channels, self.rate = callback, channels, rate
        self.started = self.closed = False
        self.thread: Any = None

    def start_stream(self) -> None:
        self.started = True

    def feed(self, pcm: np.ndarray) -> None:
        """What the WASAPI thread would do: call back with interleaved int16 bytes."""
        stereo = np.repeat(pcm.reshape(-1, 1), self.channels, axis=1).astype("<i2")
        assert self.callback(stereo.tobytes(), pcm.size, {}, 0) == (None, 0)

    def stop_stream(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


def fake_pyaudiowpatch() -> ModuleType:
    mod = ModuleType("pyaudiowpatch")
    loopbacks = [
        {"index": 7, "name": "Speakers (Realtek) [Loopback]", "defaultSampleRate": 44100.0, "maxInputChannels": 2},
        {"index": 9, "name": "Headset (USB) [Loopback]", "defaultSampleRate": 48000.0, "maxInputChannels": 2},
    ]

    class PyAudio:
        instances: ClassVar[list[PyAudio]] = []

        def __init__(self) -> None:
            self.terminated = False
            self.opened: dict[str, Any] = {}
            self.stream: FakeStream | None = None
            PyAudio.instances.append(self)

        def get_loopback_device_info_generator(self) -> Iterator[dict[str, Any]]:
            yield from loopbacks

        def get_default_wasapi_loopback(self) -> dict[str, Any]:
            return loopbacks[0]

        def open(self, **kwargs: Any) -> FakeStream:
            self.opened = kwargs
            self.stream = FakeStream(kwargs["stream_callback"], kwargs["channels"], kwargs["rate"])
            return self.stream

        def terminate(self) -> None:
            self.terminated = True

    mod.PyAudio = PyAudio  # type: ignore[attr-defined]  # (a module built at run time)
    mod.paInt16 = 8  # type: ignore[attr-defined]
    mod.paContinue = 0  # type: ignore[attr-defined]
    return mod


async def test_windows_auto_reads_the_default_outputs_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = fake_pyaudiowpatch()
    monkeypatch.setitem(sys.modules, "pyaudiowpatch", mod)
    choice = open_them("auto", platform="win32")
    source = choice.source
    assert source is not None and choice.notice is None
    pa = mod.PyAudio.instances[-1]  # type: ignore[attr-defined]
    assert pa.opened["input_device_index"] == 7 and pa.opened["format"] == 8 and pa.opened["start"] is False
    assert pa.opened["input"] is True and pa.opened["rate"] == 44100 and pa.opened["channels"] == 2
    reader = asyncio.create_task(source.read())
    await asyncio.sleep(0)  # read() starts the stream and waits
    assert pa.stream.started
    # 60 ms of a tone at 44.1 kHz stereo, from another thread, as WASAPI calls back
    burst = tone(60, freq=440, rate=44100)
    await asyncio.to_thread(pa.stream.feed, burst)
    async with asyncio.timeout(BOUND_S):
        first = await reader
    assert first.shape == (WIRE_FRAME_SAMPLES,) and source.frame_time is not None
    # WASAPI sends nothing while the output is silent: reads go on, paced, with silence
    for _ in range(6):
        async with asyncio.timeout(BOUND_S):
            await source.read()
    assert getattr(source, "silent_frames", 0) >= 3
    await source.aclose()
    assert pa.stream.closed and pa.terminated


def test_windows_lists_loopbacks_and_rejects_a_bad_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyaudiowpatch", fake_pyaudiowpatch())
    found = loopback.loopback_candidates("win32")
    assert [(c.name, c.auto) for c in found] == [
        ("Speakers (Realtek) [Loopback]", True),
        ("Headset (USB) [Loopback]", False),
    ]
    choice = open_them("headset", platform="win32")
    assert choice.source is not None and "Headset" in choice.source.description
    choice.source.close()
    with pytest.raises(DeviceNotFound, match=r"candidates: Speakers \(Realtek\) \[Loopback\], Headset"):
        open_them("bluetooth", platform="win32")


def test_windows_without_the_extra_falls_back_and_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyaudiowpatch", None)  # import raises ImportError
    choice = open_them("auto", platform="win32")
    assert choice.source is None and choice.notice is not None
    assert "pip install 'voicecoach[windows-loopback]'" in choice.notice
