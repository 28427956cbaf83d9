"""The echo canceller's far end (audio.echo_reference): placement by time, the ring, the two feeders.

Pure and fast: no device, no canceller. Frame times are made up on a simulated monotonic clock, so every
placement can be checked to the sample.
"""

from __future__ import annotations

import asyncio
from collections import deque

import numpy as np
import pytest
from audiofakes import BOUND_S, tone, wait_for

from voicecoach.audio.echo_reference import (
    BRANCH_FRAMES,
    DEADBAND_S,
    JUMP_S,
    PERSIST_S,
    RESYNC_S,
    SLEW_PPM,
    CallAudioTee,
    Cursor,
    FarEnd,
    PlayedTap,
)
from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, WIRE_RATE, Pcm, resample
from voicecoach.errors import AudioError, DeviceUnavailable

T0 = 1000.0  # a made-up monotonic time for the first block
AT0 = round(T0 * WIRE_RATE)


def ramp(n: int, start: int = 1) -> Pcm:
    """Distinct samples, so a misplaced or torn copy shows."""
    return (np.arange(n) % 30000 + start).astype(np.int16)


# --- Cursor ---------------------------------------------------------------------------------------------------


def test_cursor_stays_contiguous_through_timestamp_jitter() -> None:
    """Jitter of a few ms, and a single outlier of 16 ms (seen under module-loopback), move nothing: each block
    goes where the previous one ended."""
    cursor = Cursor()
    assert cursor.place(T0, 960) == AT0
    for k, jitter in enumerate((0.004, -0.006, 0.016, -0.003, 0.0, 0.001), start=1):
        assert cursor.place(T0 + k * 0.02 + jitter, 960) == AT0 + k * 960
    assert cursor.jumps == 0


def test_cursor_jumps_only_beyond_the_resync_bound_and_counts_it() -> None:
    cursor = Cursor()
    cursor.place(T0, 960)
    stall = T0 + 0.02 + 0.5  # half a second late: a stall
    assert cursor.place(stall, 960) == round(stall * WIRE_RATE)
    assert cursor.place(stall + 0.02, 960) == round(stall * WIRE_RATE) + 960  # contiguous again from there
    back = stall + 0.04 - 2 * RESYNC_S  # earlier than where it left off by twice the bound: a restarted stream
    assert cursor.place(back, 960) == round(back * WIRE_RATE)
    assert cursor.jumps == 2  # the first placement is not a jump


def test_cursor_jumps_over_a_real_gap_once_it_persists() -> None:
    """An output underrun of 48 ms: beyond JUMP_S for PERSIST_S, so it is a jump, not 24 s of slewing."""
    cursor = Cursor()
    for k in range(10):
        cursor.place(T0 + k * 0.02, 960)
    gap = 0.048
    placed = [cursor.place(T0 + k * 0.02 + gap, 960) for k in range(10, 20)]
    assert cursor.jumps == 1
    assert placed[-1] == round((T0 + 19 * 0.02 + gap) * WIRE_RATE)  # on the timestamps again
    frames_before_the_jump = next(i for i, at in enumerate(placed) if at != AT0 + (10 + i) * 960)
    assert frames_before_the_jump * 960 >= PERSIST_S * WIRE_RATE - 960  # a single late frame would not jump


@pytest.mark.parametrize("ppm", [100.0, -200.0])
def test_cursor_follows_ordinary_clock_drift_without_jumping(ppm: float) -> None:
    """A device clock off by ``ppm`` delivers 960 samples every 20 ms / (1 + ppm): over 5 minutes the error
    grows to 30-60 ms. The cursor slews after it, never by more than SLEW_PPM, and never jumps."""
    cursor = Cursor()
    period = WIRE_FRAME_SAMPLES / (WIRE_RATE * (1 + ppm * 1e-6))
    worst_error = worst_step = 0.0
    previous = None
    for k in range(15_000):
        began = T0 + k * period
        at = cursor.place(began, WIRE_FRAME_SAMPLES)
        if k > 5_000:  # after the error has grown past the dead band and the slew has caught up
            worst_error = max(worst_error, abs(at - began * WIRE_RATE))
        if previous is not None:
            worst_step = max(worst_step, abs(at - previous - WIRE_FRAME_SAMPLES))
        previous = at
    assert cursor.jumps == 0
    assert worst_error <= (DEADBAND_S + 0.002) * WIRE_RATE  # held within a few ms of the timestamps
    assert worst_step <= WIRE_FRAME_SAMPLES * SLEW_PPM * 1e-6 + 1  # never a step the canceller would notice


def test_cursor_drift_faster_than_its_slew_ends_in_rare_jumps() -> None:
    """1000 ppm (beyond any pair of real cards) outruns the slew: the error grows to JUMP_S, then it jumps,
    rarely, and the position never strays further than that from the timestamps."""
    cursor = Cursor()
    period = WIRE_FRAME_SAMPLES / (WIRE_RATE * (1 + 1000e-6))
    worst = 0.0
    for k in range(15_000):  # 5 minutes
        began = T0 + k * period
        worst = max(worst, abs(cursor.place(began, WIRE_FRAME_SAMPLES) - began * WIRE_RATE))
    assert 1 <= cursor.jumps <= 30
    assert worst <= (JUMP_S + 0.002) * WIRE_RATE


# --- FarEnd ---------------------------------------------------------------------------------------------------


def test_far_end_round_trips_and_reads_unwritten_samples_as_silence() -> None:
    far = FarEnd()
    assert far.end is None
    assert not far.read(AT0, 100).any()  # nothing written yet
    data = ramp(960)
    far.write(data, AT0)
    assert far.end == AT0 + 960
    np.testing.assert_array_equal(far.read(AT0, 960), data)
    np.testing.assert_array_equal(far.read(AT0 + 100, 50), data[100:150])
    # Straddling either edge: the part outside what was written is silence.
    before = far.read(AT0 - 40, 100)
    assert not before[:40].any()
    np.testing.assert_array_equal(before[40:], data[:60])
    after = far.read(AT0 + 900, 100)
    np.testing.assert_array_equal(after[:60], data[900:])
    assert not after[60:].any()
    assert not far.read(AT0 + 5000, 960).any()


def test_a_gap_between_writes_reads_as_silence_even_over_old_ring_content() -> None:
    far = FarEnd(span_s=0.01)  # a 480-sample ring
    far.write(np.full(480, 7, dtype=np.int16), AT0)  # the whole ring holds 7s
    far.write(ramp(100), AT0 + 480 + 200)  # 200 samples never written: the ring's 7s must not show there
    assert not far.read(AT0 + 480, 200).any()
    np.testing.assert_array_equal(far.read(AT0 + 680, 100), ramp(100))


def test_the_ring_wraps_and_keeps_only_the_last_span() -> None:
    far = FarEnd(span_s=0.01)
    data = ramp(1500)
    for i in range(0, 1500, 300):  # five blocks of 300 into a ring of 480: wraps three times
        far.write(data[i : i + 300], AT0 + i)
    got = far.read(AT0, 1500)
    assert not got[: 1500 - 480].any()  # overwritten: reads as silence, not as the newer samples
    np.testing.assert_array_equal(got[1500 - 480 :], data[1500 - 480 :])


def test_a_block_larger_than_the_span_keeps_its_last_span() -> None:
    far = FarEnd(span_s=0.01)
    data = ramp(1000)
    far.write(data, AT0)
    assert far.end == AT0 + 1000
    got = far.read(AT0, 1000)
    assert not got[:520].any()
    np.testing.assert_array_equal(got[520:], data[520:])


def test_writing_far_away_resets_the_far_end() -> None:
    far = FarEnd(span_s=0.01)
    far.write(ramp(480), AT0)
    later = AT0 + 10 * 480
    far.write(ramp(100, start=500), later)
    assert far.end == later + 100
    assert not far.read(AT0, 480).any()  # what was held is gone, not read back through the ring
    assert not far.read(later - 480, 480).any()
    np.testing.assert_array_equal(far.read(later, 100), ramp(100, start=500))
    far.write(ramp(100, start=900), AT0)  # far in the past: a reset too
    assert far.end == AT0 + 100 and not far.read(later, 100).any()


def test_a_write_just_before_what_is_held_after_a_reset_leaves_no_stale_samples() -> None:
    """After a reset the ring still holds the old stream. A writer that then steps back past the new start
    (a backward cursor jump) extends what is held backwards; the samples between its block and the old start
    were never written for these times and must read as silence, not as the old stream's."""
    far = FarEnd(span_s=0.01)
    far.write(np.full(480, 7, dtype=np.int16), AT0)
    later = AT0 + 10 * 480
    far.write(ramp(100), later)
    far.write(ramp(10, start=500), later - 100)
    np.testing.assert_array_equal(far.read(later - 100, 10), ramp(10, start=500))
    assert not far.read(later - 90, 90).any(), "stale ring content read back as far end"


async def test_wait_until_returns_when_the_far_end_is_written() -> None:
    far = FarEnd()
    far.write(ramp(960), AT0)
    assert await far.wait_until(AT0 + 960, 0.01)  # already there: no wait
    waiter = asyncio.create_task(far.wait_until(AT0 + 2 * 960, BOUND_S))
    await asyncio.sleep(0)
    far.write(ramp(480), AT0 + 960)  # not far enough yet
    await asyncio.sleep(0)
    assert not waiter.done()
    far.write(ramp(480), AT0 + 960 + 480)
    async with asyncio.timeout(BOUND_S):
        assert await waiter


async def test_wait_until_gives_up_after_its_bound() -> None:
    far = FarEnd()
    assert not await far.wait_until(AT0, 0.01)  # never written
    far.write(ramp(960), AT0)
    assert not await far.wait_until(AT0 + 961, 0.01)


# --- PlayedTap ------------------------------------------------------------------------------------------------


def played_blocks(pcm: Pcm, rate: int, block: int) -> deque[tuple[Pcm, float]]:
    """``pcm`` cut into the blocks an output callback hands over, each with the time its first sample plays."""
    queue: deque[tuple[Pcm, float]] = deque()
    for i in range(0, pcm.shape[0] - block + 1, block):
        queue.append((pcm[i : i + block].copy(), T0 + i / rate))
    return queue


def onset(pcm: Pcm) -> int:
    """Index of the first sample louder than a tenth of the peak."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > np.abs(pcm.astype(np.int32)).max() / 10)
    assert loud.size, "no sound where the played block should be"
    return int(loud[0])


def burst(rate: int, channels: int) -> Pcm:
    """300 ms of silence, 100 ms of tone, 200 ms of silence: the tone must land at T0 + 300 ms."""
    quiet = np.zeros((int(rate * 0.3), channels), dtype=np.int16)
    return np.concatenate([quiet, tone(100, 1000, rate, channels=channels).reshape(-1, channels), quiet[: rate // 5]])


def test_played_44k_stereo_arrives_as_48k_mono_at_its_dac_time() -> None:
    far = FarEnd()
    pcm = burst(44100, 2)
    tap = PlayedTap(far, played_blocks(pcm, 44100, 163), 44100, 2)  # 3.7 ms blocks, as PulseAudio asks
    tap.drain()
    assert tap.jumps == 0
    got = far.read(AT0, round(0.6 * WIRE_RATE))
    assert abs(onset(got) - round(0.3 * WIRE_RATE)) <= 10  # the resampler's delay is compensated: 1 sample here
    # It is the tone, at the wire rate: compare with the same burst resampled in one go.
    reference = resample(pcm, 44100, WIRE_RATE, 1)
    lag = onset(got) - onset(reference)
    n = round(0.1 * WIRE_RATE)
    corr = np.corrcoef(got[onset(got) : onset(got) + n], reference[onset(got) - lag : onset(got) - lag + n])[0, 1]
    assert corr > 0.99


def test_played_48k_mono_columns_arrive_sample_exact() -> None:
    far = FarEnd()
    pcm = ramp(4800).reshape(-1, 1)  # (n, 1), as a mono device's outdata
    tap = PlayedTap(far, played_blocks(pcm, 48000, 480), 48000, 1)
    tap.drain()
    np.testing.assert_array_equal(far.read(AT0, 4800), pcm[:, 0])


def test_drain_empties_the_callbacks_queue_and_follows_a_stall() -> None:
    far = FarEnd()
    queue = played_blocks(ramp(960).reshape(-1, 1), 48000, 480)
    tap = PlayedTap(far, queue, 48000, 1)
    tap.drain()
    assert not queue
    queue.append((np.full((480, 1), 5, dtype=np.int16), T0 + 0.5))  # the stream stalled 480 ms
    tap.drain()
    assert tap.jumps == 1
    assert not far.read(AT0 + 960, round(0.48 * WIRE_RATE)).any()
    np.testing.assert_array_equal(far.read(round((T0 + 0.5) * WIRE_RATE), 480), np.full(480, 5, dtype=np.int16))


# --- CallAudioTee ---------------------------------------------------------------------------------------------


class TimedSource:
    """A device-like source of ``count`` frames, frame ``k`` full of ``k + 1`` and captured at ``times[k]``.

    With ``gated``, each frame waits for :meth:`release`; after the last one it raises ``error`` or blocks
    until cancelled (``cancelled`` records that)."""

    realtime = True
    description = "timed test source"

    def __init__(self, times: list[float], *, gated: bool = False, error: AudioError | None = None) -> None:
        self.times = times
        self.frame_time: float | None = None
        self.error = error
        self.cancelled = False
        self.closed = False
        self._gate = asyncio.Semaphore(0) if gated else None
        self._k = 0

    def release(self) -> None:
        assert self._gate is not None
        self._gate.release()

    async def read(self) -> Pcm:
        if self._gate is not None:
            await self._gate.acquire()
        if self._k == len(self.times):
            if self.error is not None:
                raise self.error
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        self.frame_time = self.times[self._k]
        self._k += 1
        return np.full(WIRE_FRAME_SAMPLES, self._k, dtype=np.int16)

    def close(self) -> None:
        self.closed = True


def frame_times(count: int) -> list[float]:
    return [T0 + k * 0.02 for k in range(count)]


async def test_the_tee_places_call_audio_at_its_capture_time_and_gives_the_branch_every_frame() -> None:
    times = frame_times(5) + [T0 + 0.3 + k * 0.02 for k in range(5)]  # a 200 ms hole after frame 5
    source = TimedSource(times, gated=True)
    far = FarEnd()
    tee = CallAudioTee(source, far)
    branch = tee.branch_source
    assert tee.branch() is branch and branch.realtime and branch.description == "timed test source"
    async with tee.running():
        for k, began in enumerate(times):
            source.release()
            async with asyncio.timeout(BOUND_S):
                pcm = await branch.read()
            assert pcm[0] == k + 1 and branch.frame_time == began
    for k, began in enumerate(times):
        np.testing.assert_array_equal(far.read(round(began * WIRE_RATE), WIRE_FRAME_SAMPLES), np.full(960, k + 1))
    assert not far.read(AT0 + 5 * 960, round(0.2 * WIRE_RATE)).any()  # the hole is silence


async def test_the_branch_keeps_only_the_last_frames_while_nobody_reads() -> None:
    count = BRANCH_FRAMES + 15
    source = TimedSource(frame_times(count))
    far = FarEnd()
    tee = CallAudioTee(source, far)
    branch = tee.branch_source
    async with tee.running():
        await wait_for(lambda: far.end == AT0 + count * 960, what="the tee to read every frame")
        got = []
        for _ in range(BRANCH_FRAMES):
            async with asyncio.timeout(BOUND_S):
                got.append((int((await branch.read())[0]), branch.frame_time))
        assert got == [(k + 1, T0 + k * 0.02) for k in range(count - BRANCH_FRAMES, count)]
        with pytest.raises(TimeoutError):  # nothing more until the source gives more
            async with asyncio.timeout(0.05):
                await branch.read()
    # The far end got every frame, read or not.
    assert far.read(AT0, 960)[0] == 1


async def test_a_source_error_reaches_the_branch_reader_after_the_frames_before_it() -> None:
    error = DeviceUnavailable("the monitor vanished")
    source = TimedSource(frame_times(2), error=error)
    tee = CallAudioTee(source, FarEnd())
    branch = tee.branch()
    async with tee.running():
        async with asyncio.timeout(BOUND_S):
            assert (await branch.read())[0] == 1
            assert (await branch.read())[0] == 2
            with pytest.raises(DeviceUnavailable) as info:
                await branch.read()
    assert info.value is error


async def test_running_cancels_the_reader_on_exit_and_branch_close_closes_the_source() -> None:
    source = TimedSource(frame_times(1))
    far = FarEnd()
    tee = CallAudioTee(source, far)
    async with tee.running():
        await wait_for(lambda: far.end is not None, what="the first frame")
        await asyncio.sleep(0)  # the reader is now blocked in the source's read
    assert source.cancelled
    tee.branch().close()
    assert source.closed
