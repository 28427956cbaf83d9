"""The echo-cancelled microphone (audio.echo.EchoCancelledSource): real AEC3 on a simulated echo path, and
the plumbing around it (waiting for a live far end, a failing canceller, what the wrapper delegates).

The echo path is simulated sample-exact: the far end is written at the times the mic frames say, and the mic
hears it ``delay`` later, attenuated, with a little noise. A fake canceller appears only where the point is
what reaches the canceller, never where the point is how much echo is removed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from audiofakes import BOUND_S

from voicecoach.audio import echo
from voicecoach.audio.base import EndingSource
from voicecoach.audio.echo import LIVE_WAIT_S, EchoCancelledSource, load_aec3
from voicecoach.audio.echo_reference import FarEnd, PlayedTap
from voicecoach.audio.files import PcmSource, read_wav
from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, WIRE_RATE, Pcm, resample

N = WIRE_FRAME_SAMPLES
T0 = 1000.0  # the simulated monotonic time of the first mic frame
AT0 = round(T0 * WIRE_RATE)
# The far-end sample handed to the canceller with the mic's sample AT0: the same moment, less the lead the
# canceller may give its reference (see test_aec3_removes_the_echo_of_a_laptop_short_acoustic_path).
REF0 = AT0 + round(getattr(echo, "REFERENCE_LEAD_S", 0.0) * WIRE_RATE)
FAR_TEXT = "Good question. Start with the numbers, then tell them what changed since last quarter and why it matters."
NEAR_TEXT = "Got it, thanks. Let me try that again from the top."


@dataclass(frozen=True)
class Speech:
    far: Pcm  # the coach (or the other side): 48 kHz mono, about 7 s
    near: Pcm  # the user, another voice: about 4 s


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): it makes the test's speech")
    out = tmp_path_factory.mktemp("echo-speech")
    voices = []
    for name, voice, text in (("far", "en-us", FAR_TEXT), ("near", "en-us+f3", NEAR_TEXT)):
        path = out / f"{name}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "155", "-w", str(path), text], check=True, timeout=30)
        pcm, rate = read_wav(path)
        voices.append(resample(pcm, rate, WIRE_RATE, 1))
    return Speech(*voices)


class SimulatedMic:
    """A device-like mic: frame ``k`` of ``pcm`` captured at ``T0 + 20 ms * k`` (``frame_time``), then silence."""

    realtime = True

    def __init__(self, pcm: Pcm) -> None:
        self._pcm = pcm
        self._k = 0
        self.frame_time: float | None = None
        self.closed = False

    async def read(self) -> Pcm:
        frame = self._pcm[self._k * N : (self._k + 1) * N]
        frame = np.pad(frame, (0, N - frame.size))
        self.frame_time = T0 + self._k * N / WIRE_RATE
        self._k += 1
        return frame

    def close(self) -> None:
        self.closed = True


class RecordingCanceller:
    """Keeps every (near, far) block it is given; returns the near end halved, so processed frames show."""

    def __init__(self) -> None:
        self.near: list[Pcm] = []
        self.far: list[Pcm] = []

    def process(self, near: Pcm, far: Pcm) -> Pcm:
        self.near.append(near.copy())
        self.far.append(far.copy())
        return near // 2


def db(pcm: Pcm) -> float:
    x = pcm.astype(np.float64)
    return float(10 * np.log10(np.mean(x * x) + 1e-9))


def echo_path(far: Pcm, delay_ms: float, gain_db: float = -6.0, noise: float = 3.0) -> npt.NDArray[np.float64]:
    """What the mic hears of ``far``: ``delay_ms`` later, attenuated, plus a little noise (about -80 dBFS)."""
    d = round(delay_ms * WIRE_RATE / 1000)
    heard = np.zeros(far.size)
    heard[d:] = far[: far.size - d] * 10 ** (gain_db / 20)
    heard += np.random.default_rng(7).normal(0, noise, far.size)
    return heard


AHEAD = 2  # frames of far end known before a mic frame is read: output latency + the mic's own queue


async def run_path(source: EchoCancelledSource, far: FarEnd, played: Pcm, frames: int) -> Pcm:
    """Feed the far end at the mic frames' times (what the speaker plays then), :data:`AHEAD` frames before
    the mic frame of the same moment is read, as a device sink is handed its audio before it plays."""
    out = []
    for k in range(-AHEAD, frames):
        if k + AHEAD < frames:
            far.write(played[(k + AHEAD) * N : (k + AHEAD + 1) * N], AT0 + (k + AHEAD) * N)
        if k >= 0:
            out.append(await source.read())
    return np.concatenate(out)


def frames_of(seconds: float) -> int:
    return round(seconds * WIRE_RATE) // N


def as_pcm(x: npt.NDArray[np.float64]) -> Pcm:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


# --- real AEC3 ------------------------------------------------------------------------------------------------


async def erle_after_2s(speech: Speech, delay_ms: float) -> float:
    """Echo return loss enhancement of the real AEC3 over 2-4 s of far-end-only speech (noise suppression off,
    so that what is measured is the echo canceller's work)."""
    frames = frames_of(4.0)
    played = np.resize(speech.far, frames * N)
    mic = as_pcm(echo_path(played, delay_ms))
    far = FarEnd()
    source = EchoCancelledSource(SimulatedMic(mic), load_aec3(noise_suppression=False), far, clock=lambda: T0)
    out = await run_path(source, far, played, frames)
    assert source.active and source.stats.frames == frames
    after = round(2.0 * WIRE_RATE)
    return db(mic[after:]) - db(out[after:])


async def test_aec3_removes_a_60ms_echo_by_25db_within_2s(speech: Speech) -> None:
    assert await erle_after_2s(speech, 60.0) >= 25.0  # measured: 59 dB


async def test_aec3_removes_the_echo_of_a_laptop_short_acoustic_path(speech: Speech) -> None:
    """Speaker and mic a few centimetres apart: the echo trails the far end the timestamps pair it with by under
    a millisecond. AEC3 cancels poorly there (measured with these voices: 12-22 dB at 0-1 ms, 46 dB at 2 ms,
    54-59 dB from 3 ms to 150 ms; about 5 dB when the echo leads its reference), so the canceller must hand
    AEC3 the far end a little ahead of the mic (``echo.REFERENCE_LEAD_S``: with 10 ms, 54-58 dB from 0 to
    150 ms), which also absorbs timestamp errors of a few ms either way."""
    assert await erle_after_2s(speech, 0.7) >= 25.0


async def test_near_end_speech_passes_once_the_far_end_is_silent(speech: Speech) -> None:
    """2.5 s of echo to converge on, then the far end stops and the user speaks: with the run's settings
    (noise suppression and high-pass on) the user's voice comes out within 3 dB of what the mic heard."""
    frames = frames_of(3.0) + speech.near.size // N
    played = np.zeros(frames * N, dtype=np.int16)
    converge = round(2.5 * WIRE_RATE)
    played[:converge] = np.resize(speech.far, converge)
    start = frames_of(3.0) * N
    user = np.zeros(frames * N, dtype=np.float64)
    user[start : start + speech.near.size] = speech.near[: frames * N - start]
    mic = as_pcm(echo_path(played, 60.0) + user)
    far = FarEnd()
    source = EchoCancelledSource(SimulatedMic(mic), load_aec3(), far, clock=lambda: T0)
    out = await run_path(source, far, played, frames)
    assert db(mic[2 * WIRE_RATE : converge]) - db(out[2 * WIRE_RATE : converge]) >= 25.0  # it did converge
    assert abs(db(mic[start:]) - db(out[start:])) <= 3.0  # measured: 0.3 dB


# --- plumbing (a recording canceller) -------------------------------------------------------------------------


async def test_a_live_far_end_a_little_behind_is_waited_for() -> None:
    far = FarEnd()
    far.write(np.full(N // 2, 1, dtype=np.int16), REF0)  # 10 ms behind the frame's end: less than a wait
    canceller = RecordingCanceller()
    source = EchoCancelledSource(SimulatedMic(np.full(N, 100, dtype=np.int16)), canceller, far, live=True)
    reading = asyncio.create_task(source.read())
    for _ in range(3):
        await asyncio.sleep(0)
    assert not reading.done(), "the frame did not wait for its far end"
    far.write(np.full(N // 2, 2, dtype=np.int16), REF0 + N // 2)  # the monitor's next frame arrives
    async with asyncio.timeout(BOUND_S):
        out = await reading
    assert source.stats.late_reference == 0
    assert [int(b[0]) for b in canceller.far] == [1, 2]  # the second 10 ms got what arrived late
    np.testing.assert_array_equal(out, np.full(N, 50))


async def test_a_live_far_end_that_does_not_come_costs_one_bounded_wait() -> None:
    far = FarEnd()
    far.write(np.full(N // 2, 1, dtype=np.int16), REF0)
    canceller = RecordingCanceller()
    source = EchoCancelledSource(SimulatedMic(np.full(N, 100, dtype=np.int16)), canceller, far, live=True)
    async with asyncio.timeout(BOUND_S):
        await source.read()
    assert source.stats.late_reference == 1
    assert int(canceller.far[0][0]) == 1 and not canceller.far[1].any()  # went on with silence for the rest


async def test_a_stalled_far_end_is_not_waited_for() -> None:
    """Far behind (more than a wait): a capture that stopped. Waiting would add LIVE_WAIT_S to every frame."""
    far = FarEnd()
    behind = round(LIVE_WAIT_S * WIRE_RATE) + N
    far.write(np.full(N, 1, dtype=np.int16), REF0 - behind)
    canceller = RecordingCanceller()
    source = EchoCancelledSource(SimulatedMic(np.full(2 * N, 100, dtype=np.int16)), canceller, far, live=True)
    async with asyncio.timeout(BOUND_S):
        await source.read()
        await source.read()
    assert source.stats.late_reference == 0  # a wait that timed out would have counted
    assert source.stats.frames == 2 and not any(b.any() for b in canceller.far)


async def test_a_far_end_that_is_not_live_is_never_waited_for() -> None:
    far = FarEnd()
    far.write(np.full(N // 2, 1, dtype=np.int16), REF0)
    source = EchoCancelledSource(SimulatedMic(np.full(N, 100, dtype=np.int16)), RecordingCanceller(), far)
    reading = asyncio.create_task(source.read())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert reading.done() and source.stats.late_reference == 0


async def test_a_failing_canceller_is_dropped_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        calls = 0

        def process(self, near: Pcm, far: Pcm) -> Pcm:
            Broken.calls += 1
            raise RuntimeError("the native library crashed")

    mic = np.arange(3 * N, dtype=np.int16)
    source = EchoCancelledSource(SimulatedMic(mic), Broken(), FarEnd())
    with caplog.at_level(logging.WARNING, logger="voicecoach.audio.echo"):
        out = [await source.read() for _ in range(3)]
    np.testing.assert_array_equal(np.concatenate(out), mic)  # the user's voice, untouched
    assert not source.active and Broken.calls == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the native library crashed" in warnings[0].getMessage()


async def test_our_playout_is_drained_before_each_frame_and_lined_up_by_time() -> None:
    queue: deque[tuple[Pcm, float]] = deque()
    far = FarEnd()
    canceller = RecordingCanceller()
    mic = SimulatedMic(np.zeros(2 * N, dtype=np.int16))
    source = EchoCancelledSource(mic, canceller, far, played=PlayedTap(far, queue, 48000, 1))
    # The output callback queued 40 ms of blocks (10 ms, mono device), the first for the mic's first sample.
    for k in range(4):
        queue.append((np.full((480, 1), k + 1, dtype=np.int16), (REF0 + k * 480) / WIRE_RATE))
    await source.read()
    assert not queue
    await source.read()
    assert [int(b[0]) for b in canceller.far] == [1, 2, 3, 4]


async def test_a_source_without_frame_time_is_placed_by_the_clock() -> None:
    """A file mic: its frame is taken to have begun one frame before it was read (on ``clock``)."""
    now = [T0]

    def clock() -> float:
        return now[0]

    far = FarEnd()
    far.write(np.repeat(np.arange(1, 5, dtype=np.int16), 480), REF0 - N)  # 4 x 10 ms, from one frame before T0
    canceller = RecordingCanceller()
    source = EchoCancelledSource(PcmSource(np.zeros(2 * N, dtype=np.int16), WIRE_RATE), canceller, far, clock=clock)
    await source.read()  # read at T0: began at T0 - 20 ms
    now[0] = T0 + 0.02
    await source.read()
    assert [int(b[0]) for b in canceller.far] == [1, 2, 3, 4]
    assert source.stats.added_s == [0.0, 0.0]  # the clock did not move during either read


async def test_the_wrapper_is_the_microphone_for_everything_else() -> None:
    device_like = SimulatedMic(np.zeros(2 * N, dtype=np.int16))
    source = EchoCancelledSource(device_like, RecordingCanceller(), FarEnd())
    assert source.realtime and not isinstance(source, EndingSource)
    await source.read()
    await source.read()
    assert source.frame_time == device_like.frame_time == T0 + 0.02
    source.close()
    assert device_like.closed

    pcm = PcmSource(np.ones(N, dtype=np.int16), WIRE_RATE)
    ending = EchoCancelledSource(pcm, RecordingCanceller(), FarEnd())
    assert isinstance(ending, EndingSource) and not ending.realtime
    assert ending.ended is pcm.ended
    await ending.read()
    assert pcm.ended.is_set()
