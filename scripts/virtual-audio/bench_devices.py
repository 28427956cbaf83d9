"""Measure the device side on real streams: run it inside the virtual devices, e.g.

    scripts/with-virtual-audio python scripts/virtual-audio/bench_devices.py [--seconds 60] [--flushes 10]

Prints three figures (a benchmark, so nothing here asserts):

* mic callback → frame: from the input callback that completes a 20 ms frame to DeviceSource.read() returning
  it (speech from espeak-ng played into vmic with paplay);
* flush → silence: how long a tone keeps sounding in a `parec` recording of vspeaker.monitor after
  Player.flush(), computed as (tone length in the recording) - (time it played before flush());
* underruns over a run of a Player on a DeviceSink fed 20 ms frames at real time, as a server would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from voicecoach.audio.devices import DeviceSink, DeviceSource, rescan_devices, resolve_device
from voicecoach.audio.frames import envelope, frame_from_pcm
from voicecoach.audio.tracks import Player

RATE = 48000
FRAME = 960


class PacedTone(MediaStreamTrack):
    """A remote track at real pace: 20 ms stereo frames of a tone (``loud``) or silence, like a server's."""

    kind = "audio"

    def __init__(self, loud: bool = True) -> None:
        super().__init__()
        self.loud = loud
        self._n = 0
        self._start: float | None = None
        t = np.arange(FRAME * 50) / RATE  # 1 s of a 440 Hz tone: a whole number of periods, so it loops cleanly
        self._tone = (np.sin(2 * np.pi * 440 * t) * 9000).astype(np.int16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._n * 0.02 - time.monotonic()))
        i = self._n % 50
        mono = self._tone[i * FRAME : (i + 1) * FRAME] if self.loud else np.zeros(FRAME, dtype=np.int16)
        frame = frame_from_pcm(np.repeat(mono.reshape(-1, 1), 2, axis=1), RATE, self._n * FRAME)
        frame.time_base = Fraction(1, RATE)
        self._n += 1
        return frame


async def poll(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110  # the figures are plain attributes, there is no Event to await
            await asyncio.sleep(0.002)


def make_speech(tmp: Path) -> Path:
    speech = tmp / "speech.wav"
    text = "Good question. Start with the numbers, then compare the two options, and say which one you would pick."
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(speech), text], check=True, timeout=30)
    return speech


async def mic_latency(speech: Path) -> list[float]:
    source = DeviceSource(resolve_device(None, "input"))
    latencies: list[float] = []

    async def collect() -> None:
        while True:
            await source.read()
            assert source.last_latency_s is not None
            latencies.append(source.last_latency_s)

    task = asyncio.create_task(collect())
    try:
        await asyncio.sleep(0.3)
        play = await asyncio.create_subprocess_exec("paplay", "--device=vmic", str(speech))
        async with asyncio.timeout(30):
            await play.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        source.close()
    print(f"  input stream latency (PortAudio): {source.input_latency * 1000:.1f} ms, "
          f"overflows: {source.status_flags}, frames dropped: {source.dropped}")  # fmt: skip
    return latencies


async def flush_to_silence(tmp: Path, reps: int) -> list[float]:
    results: list[float] = []
    pulled: list[float] = []
    for rep in range(reps):
        raw = tmp / f"flush{rep}.raw"
        parec = ["parec", "-d", "vspeaker.monitor", "--raw", "--format=s16le", "--rate=48000", "--channels=1"]
        rec = await asyncio.create_subprocess_exec(*parec, "--latency-msec=10", str(raw))
        sink = DeviceSink(resolve_device(None, "output"))
        player = Player(sink, prebuffer_ms=60)
        track = PacedTone(loud=False)
        task = asyncio.create_task(player.run(track))
        try:
            await asyncio.sleep(0.3)
            player.mark_response("r")
            track.loud = True
            await poll(lambda p=player: p.played_ms("r") >= 300)  # type: ignore[misc]  # bind this round's player
            first = player.first_audio_at
            flushed_at = time.monotonic()
            player.flush()
            await asyncio.sleep(0.3)  # the tone keeps arriving (the cancelled response's tail): must stay unheard
            track.loud = False
            await asyncio.sleep(0.3)
        finally:
            track.stop()
            async with asyncio.timeout(5):
                await task
            sink.close()
            rec.terminate()
            async with asyncio.timeout(5):
                await rec.wait()
        pcm = np.frombuffer(raw.read_bytes(), dtype="<i2").astype(np.int16)
        loud = np.flatnonzero(envelope(pcm, RATE, 1) > 0.05)
        assert first is not None and loud.size
        tone_ms = loud[-1] - loud[0] + 1
        # The tone starts in the recording at first_audio_at (pulled + output latency): map flush() likewise.
        results.append(tone_ms - (flushed_at - first) * 1000)
        pulled.append(results[-1] - sink.output_latency * 1000)
    print(summary("  of which on our side (flush -> last faded sample pulled) (ms)", pulled))
    return results


async def underruns(seconds: float) -> None:
    sink = DeviceSink(resolve_device(None, "output"))
    player = Player(sink, prebuffer_ms=80)
    track = PacedTone()
    task = asyncio.create_task(player.run(track))
    try:
        await asyncio.sleep(1.0)
        early = sink.status_flags  # flags in the first second come from starting the stream, before any audio
        await asyncio.sleep(max(0.0, seconds - 1.0))
    finally:
        track.stop()
        async with asyncio.timeout(5):
            await task
        sink.close()
    print(f"underruns over {seconds:.0f} s at real time: player {player.underruns}, host (PortAudio status "
          f"callbacks) {sink.status_flags} ({early} in the first second), callback errors "
          f"{sink.callback_errors}, frames {player.frames_received}, "
          f"output latency {sink.output_latency * 1000:.1f} ms")  # fmt: skip


def summary(name: str, values: list[float]) -> str:
    v = sorted(values)
    return (f"{name}: n={len(v)} median {statistics.median(v):.2f} p95 {v[int(0.95 * (len(v) - 1))]:.2f} "
            f"max {v[-1]:.2f} min {v[0]:.2f}")  # fmt: skip


async def main(tmp: Path, seconds: float, flushes: int) -> None:
    rescan_devices()
    print(summary("mic callback -> frame (ms)", [x * 1000 for x in await mic_latency(tmp / "speech.wav")]))
    silences = await flush_to_silence(tmp, flushes)
    print(summary("flush -> silence at the speaker, in the recording (ms)", silences))
    await underruns(seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the underrun run")
    parser.add_argument("--flushes", type=int, default=10, help="flush measurements")
    args = parser.parse_args()
    if "PULSE_SERVER" not in os.environ:
        sys.exit("run this inside scripts/with-virtual-audio")
    with tempfile.TemporaryDirectory() as tmp_dir:
        make_speech(Path(tmp_dir))
        asyncio.run(main(Path(tmp_dir), args.seconds, args.flushes))
