"""The call's audio on PipeWire (0.3.65, Debian 12) through pipewire-pulse: the server current desktops run.

A private ``pipewire`` + ``wireplumber`` + ``pipewire-pulse`` runs under ``dbus-run-session`` in a process group of
its own (stopped by that group's id), with the recipe of /work/shared/testing.md: null sinks ``vcall`` (the
default sink: the call) and ``vmic`` (whose monitor is the default *source*: the mic). That default source is what
makes ``@DEFAULT_MONITOR@`` record the mic on PipeWire; the monitor resolved by name must not.
Skipped only when the PipeWire binaries are absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from audiofakes import BOUND_S, tone
from test_loopback import Collector, best_correlation

from voicecoach.audio import devices
from voicecoach.audio.files import WavSink, read_wav
from voicecoach.audio.frames import envelope, resample
from voicecoach.audio.loopback import PulseMonitorSource, open_them

BINARIES = ("pipewire", "wireplumber", "pipewire-pulse", "dbus-run-session", "pactl", "paplay")
START_TIMEOUT_S = 15.0


class PipeWire:
    def __init__(self, root: Path) -> None:
        run = root / "run"
        run.mkdir(mode=0o700)
        for name in ("config", "state", "data"):
            (root / name).mkdir()
        self.env = {
            "XDG_RUNTIME_DIR": str(run),
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_DATA_HOME": str(root / "data"),
            "PULSE_SERVER": f"unix:{run}/pulse/native",
        }
        self.log = root / "pipewire.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def child_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env.pop("PULSE_COOKIE", None)
        return env

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self.child_env(), capture_output=True, text=True, timeout=5)
        if done.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {done.stderr.strip()}; see {self.log}")
        return done.stdout.strip()

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                ["dbus-run-session", "--", "sh", "-c", "pipewire & sleep 0.5; wireplumber & pipewire-pulse & wait"],
                env=self.child_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while subprocess.run(["pactl", "info"], env=self.child_env(), capture_output=True, timeout=5).returncode:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise TimeoutError(f"pipewire-pulse did not answer `pactl info`; see {self.log}")
            time.sleep(0.1)
        for sink, channels in (("vcall", 2), ("vmic", 1)):
            self.pactl("load-module", "module-null-sink", f"sink_name={sink}",
                       f"sink_properties=device.description={sink}", "rate=48000", f"channels={channels}")  # fmt: skip
        while True:  # the nodes appear asynchronously, through WirePlumber
            sources = self.pactl("list", "short", "sources")
            if "vcall.monitor" in sources and "vmic.monitor" in sources:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the null sinks did not appear; see {self.log}")
            time.sleep(0.1)
        self.pactl("set-default-sink", "vcall")
        self.pactl("set-default-source", "vmic.monitor")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the group this Popen created: ours only
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def pipewire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipeWire]:
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"PipeWire is not installed (no {', '.join(missing)}): apt-get install pipewire pipewire-pulse "
                    "wireplumber dbus")  # fmt: skip
    server = PipeWire(tmp_path_factory.mktemp("pipewire"))
    try:
        server.start()
        with pytest.MonkeyPatch.context() as mp:
            for key, value in server.env.items():
                mp.setenv(key, value)
            mp.delenv("PULSE_COOKIE", raising=False)
            devices.rescan_devices()  # PortAudio lists the ALSA `pulse` device only while a server answers
            yield server
    finally:
        server.stop()
        devices.rescan_devices()


@pytest.fixture
def speech(tmp_path: Path) -> tuple[Path, np.ndarray, int]:
    path = tmp_path / "them.wav"
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), "What would you do differently?"],
                       check=True, timeout=30)  # fmt: skip
        pcm, rate = read_wav(path)
    else:
        rate, pcm = 48000, tone(1500, freq=220) * np.repeat(np.arange(15) % 2, 4800)[:72000].astype(np.int16)
        sink = WavSink(path, rate)
        sink.write(pcm)
        sink.close()
    return path, pcm, rate


async def play(server: PipeWire, path: Path, *device: str) -> None:
    proc = await asyncio.create_subprocess_exec("paplay", *device, str(path), env=server.child_env())
    async with asyncio.timeout(BOUND_S):
        assert await proc.wait() == 0


async def test_auto_hears_the_default_sink_and_not_the_mic_on_pipewire(
    pipewire: PipeWire, speech: tuple[Path, np.ndarray, int]
) -> None:
    path, pcm, rate = speech
    choice = open_them("auto")
    source = choice.source
    assert isinstance(source, PulseMonitorSource) and source.monitor == "vcall.monitor", choice.notice
    reader = Collector(source)
    try:
        await reader.more(5)
        await play(pipewire, path)  # the default sink: the call
        await reader.more(15)
        call_frames = len(reader.frames)
        await play(pipewire, path, "--device=vmic")  # the mic: must not be heard here
        await reader.more(15)
    finally:
        await reader.stop()
        await source.aclose()
    heard = np.concatenate(reader.frames[:call_frames])
    reference = envelope(resample(pcm, rate, 48000), 48000, 20)
    assert best_correlation(envelope(heard, 48000, 20), reference) >= 0.9
    leaked = np.concatenate(reader.frames[call_frames + 10 :])
    assert float(np.abs(leaked).max()) < 100, "the mic's speech reached `them` (the @DEFAULT_MONITOR@ fault)"


async def test_a_new_default_sink_is_followed_on_pipewire(pipewire: PipeWire) -> None:
    pipewire.pactl("load-module", "module-null-sink", "sink_name=vheadphones", "rate=48000", "channels=2")
    choice = open_them("auto")
    source = choice.source
    assert isinstance(source, PulseMonitorSource)
    reader = Collector(source)
    try:
        await reader.more(5)
        await asyncio.sleep(0.3)  # the follower has subscribed
        changed = time.monotonic()
        pipewire.pactl("set-default-sink", "vheadphones")
        async with asyncio.timeout(2.0):
            while source.sink != "vheadphones":
                await asyncio.sleep(0.01)
        print(f"\nPipeWire: default sink change followed in {(time.monotonic() - changed) * 1000:.0f} ms")
        await reader.more(5)
    finally:
        await reader.stop()
        await source.aclose()
        pipewire.pactl("set-default-sink", "vcall")
