"""Real sounddevice streams on the private PulseAudio daemon (see pulse.py); real time, loopback only.

vmic: `paplay --device=vmic` feeds it and its monitor is the default input. vspeaker: the default output;
`parec -d vspeaker.monitor` records what was played. Skipped only when the pulseaudio binary is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pulse
import pytest
from audiofakes import BOUND_S, QueueTrack, StartPlayer, stereo_frames, tone, wait_for

from voicecoach.audio import alsa
from voicecoach.audio.devices import DeviceSink, DeviceSource, list_devices, open_sink, open_source, resolve_device
from voicecoach.audio.files import WavSink, read_wav
from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, envelope, resample
from voicecoach.audio.tracks import Player
from voicecoach.errors import DeviceNotFound

pytestmark = pytest.mark.usefixtures("virtual_audio")
SPEECH = "Good question. Start with the numbers."


def best_correlation(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Highest Pearson correlation of ``reference`` against any same-length stretch of ``recorded``."""
    n = reference.size
    assert recorded.size >= n, "the recording is shorter than what was played"
    return max(float(np.corrcoef(recorded[lag : lag + n], reference)[0, 1]) for lag in range(recorded.size - n + 1))


class Recorder:
    """`parec` from vspeaker.monitor into a raw 48 kHz mono file, started and stopped by pid."""

    def __init__(self, audio: pulse.VirtualAudio, path: Path) -> None:
        self.path = path
        cmd = ["parec", "-d", "vspeaker.monitor", "--raw", "--format=s16le", "--rate=48000", "--channels=1",
               "--latency-msec=10", str(path)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=audio.child_env())

    async def flowing(self) -> None:
        await wait_for(lambda: self.path.exists() and self.path.stat().st_size > 9600, what="parec to record")

    def stop(self) -> np.ndarray:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=BOUND_S)
        return np.frombuffer(self.path.read_bytes(), dtype="<i2").astype(np.int16)


@pytest.fixture
def recorder(virtual_audio: pulse.VirtualAudio, tmp_path: Path) -> Iterator[Recorder]:
    rec = Recorder(virtual_audio, tmp_path / "speaker.raw")
    try:
        yield rec
    finally:
        rec.stop()


@pytest.fixture
async def device_source() -> AsyncIterator[DeviceSource]:
    source = DeviceSource(resolve_device(None, "input"))
    try:
        yield source
    finally:
        source.close()


def test_lists_the_sound_servers_devices_with_defaults() -> None:
    listing = list_devices()
    assert listing, "PortAudio sees no devices although the daemon runs"
    assert sum(d.is_default_input for d in listing) == 1 and sum(d.is_default_output for d in listing) == 1
    assert any(d.name == "pulse" for d in listing)


def test_selects_devices_by_name_and_by_index() -> None:
    by_name = resolve_device("PULSE", "output")
    assert by_name.name == "pulse"
    assert resolve_device(by_name.index, "input") == by_name
    assert resolve_device(str(by_name.index), "output") == by_name
    sink = open_sink(None, "pulse")
    try:
        assert isinstance(sink, DeviceSink) and sink.device == by_name and sink.rate == int(by_name.default_samplerate)
    finally:
        sink.close()
    source = open_source(None, str(by_name.index))
    try:
        assert isinstance(source, DeviceSource) and source.device == by_name
    finally:
        source.close()


def test_a_missing_device_lists_what_there_is() -> None:
    with pytest.raises(DeviceNotFound) as info:
        open_source(None, "no-such-microphone")
    message = str(info.value)
    assert "no input device matches 'no-such-microphone'" in message
    assert "pulse" in message and "default" in message and "`voicecoach devices`" in message


@pytest.fixture
def speech(tmp_path: Path) -> tuple[Path, np.ndarray, int]:
    """A spoken sentence as a WAV file, with its samples and rate."""
    path = tmp_path / "speech.wav"
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), SPEECH], check=True, timeout=30)
        pcm, rate = read_wav(path)
    else:  # a syllable-like on/off pattern when espeak-ng is absent: what matters is the envelope
        rate, pcm = 48000, tone(1500, freq=220) * np.repeat(np.arange(15) % 2, 4800)[:72000].astype(np.int16)
        sink = WavSink(path, rate)
        sink.write(pcm)
        sink.close()
    return path, pcm, rate


async def test_speech_played_into_the_virtual_mic_reaches_the_device_source(
    virtual_audio: pulse.VirtualAudio, device_source: DeviceSource, speech: tuple[Path, np.ndarray, int]
) -> None:
    path, pcm, rate = speech
    frames: list[np.ndarray] = []

    async def collect() -> None:
        while True:
            frames.append(await device_source.read())

    collector = asyncio.create_task(collect())
    try:
        await wait_for(lambda: len(frames) >= 5, what="the input stream to start")
        play = await asyncio.create_subprocess_exec("paplay", "--device=vmic", str(path), env=virtual_audio.child_env())
        async with asyncio.timeout(BOUND_S):
            assert await play.wait() == 0
        done = len(frames)
        await wait_for(lambda: len(frames) >= done + 25, what="500 ms more of input")
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
    assert all(f.shape == (WIRE_FRAME_SAMPLES,) for f in frames)
    recorded = envelope(np.concatenate(frames), 48000, 20)
    reference = envelope(resample(pcm, rate, 48000), 48000, 20)
    assert best_correlation(recorded, reference) >= 0.9
    assert device_source.last_latency_s is not None and device_source.dropped == 0


async def test_device_sink_write_is_recorded_back(virtual_audio: pulse.VirtualAudio, tmp_path: Path) -> None:
    """A 300 ms burst written to the device comes back from the speaker's monitor, whole.

    Real time on a shared 2-core machine: a stall can make the sound server drop a few blocks, so up to three
    takes are made and one must come back whole; a sink that loses or mangles audio fails every take.
    """
    takes: list[str] = []
    for attempt in range(3):
        recorder = Recorder(virtual_audio, tmp_path / f"burst-{attempt}.raw")
        try:
            length_ms = await _burst_round_trip(recorder)
        finally:
            recorder.stop()
        if length_ms == pytest.approx(300, abs=15):
            return
        takes.append(f"{length_ms} ms")
    pytest.fail("the 300 ms burst never came back whole: " + ", ".join(takes))


async def _burst_round_trip(recorder: Recorder) -> int:
    """Write a 300 ms burst to the default output; the length in ms of what the monitor recorded."""
    await recorder.flowing()
    sink = DeviceSink(resolve_device(None, "output"))
    try:
        assert sink.channels == 2
        burst = tone(300, freq=660, rate=sink.rate, channels=2)
        sink.write(burst)
        await wait_for(lambda: sink.underruns >= 1, what="the burst to leave the ring")  # runs dry once, at its end
        dry_at = time.monotonic()
        # Closing an active stream discards what the host still buffers: give that time to play.
        await wait_for(lambda: time.monotonic() > dry_at + sink.output_latency + 0.1, what="the host buffer")
    finally:
        sink.close()
    recorded = recorder.stop()
    env = envelope(recorded, 48000, 5)
    loud = np.flatnonzero(env > 0.1)
    assert loud.size, "nothing of the burst came back from vspeaker.monitor"
    return int(loud[-1] - loud[0] + 1) * 5


async def test_flush_on_the_device_is_silent_within_30_ms(
    virtual_audio: pulse.VirtualAudio, tmp_path: Path, run_player: StartPlayer
) -> None:
    """The tone's length in the recording, less how long it played before flush(), is the flush's latency.

    This is a wall-clock measurement on a real-time audio path. On a shared 2-core machine a scheduling stall
    can make the sound server re-buffer and stretch the recording, so the measurement is taken up to three
    times and one clean take must meet the budget; a flush that does not silence the output fails every take.
    """
    takes: list[str] = []
    for attempt in range(3):
        recorder = Recorder(virtual_audio, tmp_path / f"speaker-{attempt}.raw")
        try:
            result = await _measure_flush(recorder, run_player)
        finally:
            recorder.stop()
        if result is None:
            return
        takes.append(result)
    pytest.fail("flush() did not silence the device within 30 ms in any of 3 takes: " + "; ".join(takes))


async def _measure_flush(recorder: Recorder, run_player: StartPlayer) -> str | None:
    """One take: None if it met the budget, else what went wrong."""
    await recorder.flowing()
    sink = DeviceSink(resolve_device(None, "output"))
    player = Player(sink, prebuffer_ms=60)
    track = QueueTrack()
    stop_feeding = asyncio.Event()
    flushed_at: float | None = None

    async def feed_in_real_time() -> None:
        """Like the server: 20 ms frames at real pace, the tone until 200 ms after the flush (its tail in
        flight), then silence (the server cleared its buffer)."""
        start = time.monotonic()
        for i, frame in enumerate(stereo_frames(tone(3000, freq=440))):
            if stop_feeding.is_set():
                return
            tail_over = flushed_at is not None and time.monotonic() > flushed_at + 0.2
            track.put(np.zeros_like(frame) if tail_over else frame)
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))

    try:
        await run_player(player, track)
        player.mark_response("r1")
        feeder = asyncio.create_task(feed_in_real_time())
        try:
            await wait_for(lambda: player.played_ms("r1") >= 400, what="400 ms of the tone to play")
            first = player.first_audio_at
            flushed_at = time.monotonic()
            player.flush()
            await wait_for(lambda: not player.is_playing, what="the player to report silence")
            await wait_for(lambda: time.monotonic() > flushed_at + 0.6, what="the tail, then 400 ms of silence")
            underruns_while_fed = player.underruns
        finally:
            stop_feeding.set()
            async with asyncio.timeout(BOUND_S):
                await feeder
        await asyncio.sleep(0.1)  # let the last blocks reach the recorder (bounded; asserts below decide)
    finally:
        sink.close()
    recorded = recorder.stop()
    assert first is not None and flushed_at is not None
    env = envelope(recorded, 48000, 1) > 0.05
    loud = np.flatnonzero(env)
    assert loud.size, "the tone never reached vspeaker.monitor"
    tone_ms = loud[-1] - loud[0] + 1
    # first_audio_at is when the first sample reached the speaker (pulled + the device's output latency), the
    # moment the tone starts in the recording; so flush() falls (flushed_at - first) later in the recording.
    played_before_flush_ms = (flushed_at - first) * 1000
    flush_to_silence_ms = tone_ms - played_before_flush_ms
    gaps = np.diff(loud)
    if gaps.max() > 2:
        return "the tone stopped and came back: the tail after flush() was played"
    assert sink.callback_errors == 0
    if flush_to_silence_ms > 30 or underruns_while_fed:
        return f"still sounding {flush_to_silence_ms:.0f} ms after flush(), {underruns_while_fed} underruns"
    return None


async def test_device_underruns_are_counted_and_alsa_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    """A stalled audio callback makes the host underflow. ALSA would print "ALSA lib pcm.c:...: underrun
    occurred" to fd 2 for each; instead the sink counts them (PortAudio's flag) and so does alsa.py."""
    sink = DeviceSink(resolve_device(None, "output"))
    player = Player(sink)
    calls = 0

    def stalling_pull(block: np.ndarray) -> None:
        nonlocal calls
        calls += 1
        block.fill(0)
        if calls % 40 == 0:
            time.sleep(0.1)  # longer than everything the host has buffered (15 ms latency)

    capfd.readouterr()
    alsa_before = alsa.underruns
    try:
        sink.start(stalling_pull)
        await wait_for(lambda: sink.output_underflows >= 2, what="two underflows of the stalled stream")
    finally:
        sink.close()
    err = capfd.readouterr().err
    assert "ALSA lib" not in err and "underrun" not in err
    assert player.device_underruns == sink.output_underflows >= 2
    assert player.underruns == 0  # the ring did not run dry: the host did
    assert alsa.underruns > alsa_before  # ALSA did report them, to our handler
