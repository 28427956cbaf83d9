"""PlayoutBuffer: the lock-free ring between the event loop and an audio callback (pure, no loop needed)."""

from __future__ import annotations

import numpy as np
import pytest
from audiofakes import tone

from voicecoach.audio.frames import fade_out_ramp
from voicecoach.audio.playout import Audible, PlayLedger, PlayoutBuffer, Sounding

RATE = 48000
BLOCK = 480  # 10 ms


def pull(buf: PlayoutBuffer, blocks: int = 1, channels: int = 2) -> np.ndarray:
    out = np.zeros((BLOCK, channels), dtype=np.int16)
    got = []
    for _ in range(blocks):
        buf.pull(out)
        got.append(out.copy())
    return np.concatenate(got)


def test_waits_for_the_prebuffer_then_plays_in_order() -> None:
    buf = PlayoutBuffer(RATE, 2, prebuffer_ms=30)
    audio = tone(100, channels=2)
    buf.push(audio[:960])  # 20 ms < 30 ms pre-buffer
    assert not pull(buf).any()
    assert buf.read_pos == 0 and buf.underruns == 0
    buf.push(audio[960:])
    assert np.array_equal(pull(buf, 10), audio)


def test_wraps_around_the_ring_and_refuses_what_does_not_fit() -> None:
    buf = PlayoutBuffer(RATE, 1, prebuffer_ms=0, capacity_s=0.05)  # 2400 frames
    audio = np.arange(1, 4801, dtype=np.int16)
    assert buf.push(audio[:2000]) == 2000
    assert np.array_equal(pull(buf, 3, channels=1)[:1440, 0], audio[:1440])
    assert buf.push(audio[2000:]) == 2400 - (2000 - 1440)  # only the free space is taken
    played = pull(buf, 5, channels=1)[:, 0]
    assert np.array_equal(played, audio[1440 : 1440 + 2400])


def test_underrun_plays_zeros_counts_once_and_rebuffers() -> None:
    buf = PlayoutBuffer(RATE, 2, prebuffer_ms=20)
    audio = tone(30, channels=2)
    buf.push(audio)
    first = pull(buf, 4)  # 40 ms asked, 30 ms queued
    assert np.array_equal(first[:1440], audio) and not first[1440:].any()
    assert buf.underruns == 1
    pull(buf, 3)
    assert buf.underruns == 1  # staying empty is one underrun, not one per block
    buf.push(audio[:480])  # 10 ms: below the pre-buffer again
    assert not pull(buf).any()
    buf.push(audio[480:])
    assert pull(buf).any()


def test_flush_fades_within_one_block_then_silence() -> None:
    buf = PlayoutBuffer(RATE, 2, prebuffer_ms=20, fade_ms=10)
    audio = np.full((RATE, 2), 10000, dtype=np.int16)  # 1 s of a constant: the fade's shape is easy to see
    buf.push(audio)
    pull(buf, 5)
    buf.flush()
    faded = pull(buf)[:, 0].astype(np.int32)
    assert faded[0] > 9900 and faded[-1] < 100  # from nearly full level to nearly nothing
    assert np.all(np.diff(faded) <= 0)  # monotonic: no click
    assert np.array_equal(faded, (10000 * fade_out_ramp(BLOCK)[:, 0]).astype(np.int16))
    assert not pull(buf, 10).any()
    assert buf.buffered == 0
    assert buf.cuts_since(0) == ([(6 * BLOCK, RATE)], 1)


def test_flush_keeps_audio_pushed_after_it() -> None:
    buf = PlayoutBuffer(RATE, 1, prebuffer_ms=20)
    buf.push(np.full(4800, 5000, dtype=np.int16))
    pull(buf, 2, channels=1)
    buf.flush()
    buf.push(np.full(960, -7000, dtype=np.int16))
    played = pull(buf, 4, channels=1)[:, 0]
    fade = RATE * 5 // 1000  # the default 5 ms fade
    assert 0 < played[fade - 1] < played[0]  # the old audio's fade
    assert np.all(played[fade : fade + 960] == -7000)  # then the new audio (exactly one pre-buffer of it)
    assert not played[fade + 960 :].any()


def test_flush_before_playback_started_skips_without_a_fade() -> None:
    buf = PlayoutBuffer(RATE, 1, prebuffer_ms=80)
    buf.push(np.full(960, 5000, dtype=np.int16))  # below the pre-buffer: nothing audible yet
    buf.flush()
    assert not pull(buf, channels=1).any()
    assert buf.buffered == 0 and buf.cuts_since(0) == ([(0, 960)], 1)


def test_a_second_flush_during_the_fade_finishes_that_fade() -> None:
    buf = PlayoutBuffer(RATE, 1, prebuffer_ms=0, fade_ms=20)  # the fade spans two blocks
    buf.push(np.full(4800, 8000, dtype=np.int16))
    pull(buf, channels=1)
    buf.flush()
    first = pull(buf, channels=1)[:, 0]
    buf.push(np.full(480, 8000, dtype=np.int16))
    buf.flush()
    second = pull(buf, channels=1)[:, 0]
    joined = np.concatenate([first, second]).astype(np.int32)
    assert np.all(np.diff(joined) <= 0) and joined[-1] < 100  # one continuous fade, no jump back up
    assert not pull(buf, 3, channels=1).any()


@pytest.mark.parametrize("samples", [1, 480, 441])
def test_fade_ramp_is_strictly_between_one_and_zero(samples: int) -> None:
    ramp = fade_out_ramp(samples)
    assert ramp.shape == (samples, 1)
    assert np.all(ramp < 1) and np.all(ramp > 0) and np.all(np.diff(ramp[:, 0]) < 0)


def test_the_cut_log_keeps_the_latest_cuts_for_a_reader_that_fell_behind() -> None:
    buf = PlayoutBuffer(RATE, 1, prebuffer_ms=80)
    for _ in range(PlayoutBuffer.CUT_LOG + 5):  # each flush skips 10 samples that never started playing
        buf.push(np.ones(10, dtype=np.int16))
        buf.flush()
        pull(buf, channels=1)
    cuts, count = buf.cuts_since(0)
    assert count == PlayoutBuffer.CUT_LOG + 5 and len(cuts) == PlayoutBuffer.CUT_LOG
    assert cuts[-1] == (10 * (count - 1), 10 * count)
    assert buf.cuts_since(count) == ([], count)


def test_ledger_counts_per_response_and_a_cut_moves_the_first_audible_sample() -> None:
    """PlayLedger alone, with explicit positions and times: what a flush skipped was never audible."""
    ledger = PlayLedger()
    ledger.mark("r1")
    ledger.pushed(100, 600)  # r1's first loud sample at 100
    assert ledger.advance(50, [], at=1.0) == []  # the output is still before it
    ledger.advance(80, [(80, 700)], at=2.0)  # a flush skipped it (and the rest) before it played
    ledger.pushed(700, 900)  # later audio of r1: this is now its first audible sample
    assert ledger.advance(750, [], at=3.0) == [Sounding(True, 3.0), Audible("r1", 3.0)]
    assert ledger.played_samples("r1") == 50
    ledger.mark("r2")
    ledger.pushed(900, 1000)  # contiguous, but another response's
    assert ledger.advance(1000, [], at=4.0) == [Audible("r2", 4.0), Sounding(False, 4.0)]
    assert (ledger.played_samples("r1"), ledger.played_samples("r2")) == (200, 100)
    assert ledger.idle
