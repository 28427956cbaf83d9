"""Player: resampling, pre-buffer, flush with fade, the hold after flush, accounting, and file timelines.

Most tests use :class:`PullingSink`, whose "audio callback" is the test itself, so every block is
deterministic. The file-sink tests run the Player's wall-clock pump.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from audiofakes import BOUND_S, PullingSink, QueueTrack, RecordingSink, StartPlayer, stereo_frames, tone, wait_for

from voicecoach.audio import tracks
from voicecoach.audio.frames import envelope, rms
from voicecoach.audio.tracks import Player
from voicecoach.errors import AudioError

LOUD = tone(2000, freq=440)  # 2 s of a 440 Hz tone at 48 kHz


async def feed(player: Player, track: QueueTrack, pcm: np.ndarray) -> None:
    """Queue ``pcm`` as remote frames and wait until the player has taken all of them."""
    frames = stereo_frames(pcm)
    target = player.frames_received + len(frames)
    for frame in frames:
        track.put(frame)
    await wait_for(lambda: player.frames_received >= target, what="the player to drain the track")


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[int(np.argmax(spectrum))])


async def test_downmixes_and_resamples_to_a_file_sink_and_writes_the_rest_at_the_end(
    run_player: StartPlayer,
) -> None:
    sink = RecordingSink(rate=24000, channels=1)
    player = Player(sink, prebuffer_ms=80)
    track = QueueTrack()
    task = await run_player(player, track)
    await feed(player, track, tone(300, freq=1000))
    track.end()
    async with asyncio.timeout(BOUND_S):
        await task
    out = sink.pcm[:, 0]
    assert out.size == pytest.approx(24000 * 0.3, abs=48)  # all 300 ms, at 24 kHz (less the filter's delay)
    assert dominant_hz(out, 24000) == pytest.approx(1000, abs=5)
    assert rms(out[480:-480]) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


async def test_file_timeline_follows_the_wall_clock_with_silence_in_gaps(run_player: StartPlayer) -> None:
    sink = RecordingSink(rate=24000, channels=1)
    player = Player(sink, prebuffer_ms=40)
    track = QueueTrack()
    started = time.monotonic()
    task = await run_player(player, track)
    await feed(player, track, tone(100))
    first_sent = time.monotonic()
    await asyncio.sleep(0.3)  # the scenario: the remote side goes quiet (sends nothing) for 300 ms
    second_sent = time.monotonic()
    await feed(player, track, tone(100))
    written_by = 24000 * (second_sent - started + 0.1 + 0.04 + 0.05)  # the burst, the pre-buffer, a margin
    await wait_for(lambda: sink.pcm.shape[0] >= written_by, what="the pump to write past the second burst")
    track.end()
    async with asyncio.timeout(BOUND_S):
        await task
    env = np.concatenate([[False], envelope(sink.pcm[:, 0], 24000, 10) > 0.05])
    onsets = np.flatnonzero(np.diff(env.astype(np.int8)) == 1)
    assert len(onsets) == 2, "two separate bursts with silence between them"
    gap_in_file_ms = (onsets[1] - onsets[0]) * 10
    gap_in_session_ms = (second_sent - first_sent) * 1000
    assert gap_in_file_ms == pytest.approx(gap_in_session_ms, abs=60)


async def test_played_ms_counts_what_was_pulled_not_what_was_received(run_player: StartPlayer) -> None:
    sink = PullingSink()
    player = Player(sink, prebuffer_ms=40)
    track = QueueTrack()
    await run_player(player, track)
    player.mark_response("r1")
    await feed(player, track, LOUD[:9600])  # 200 ms received
    assert player.played_ms("r1") == 0 and not player.is_playing and player.first_audio_at is None
    before = time.monotonic()
    sink.tick(1)
    first = player.first_audio_at  # the first loud sample was in this block
    assert first is not None and before <= first <= time.monotonic()
    sink.tick(4)
    assert player.played_ms("r1") == pytest.approx(50)
    assert player.played_ms("other") == 0
    assert player.is_playing
    assert player.first_audio_at == first
    sink.tick(20)  # 200 ms asked, 150 ms left: runs dry
    assert player.played_ms("r1") == pytest.approx(200)
    assert player.underruns == 1
    player.mark_response("r2")
    assert player.first_audio_at is None  # reset by mark_response


async def test_flush_fades_within_one_block_and_drops_the_queue(run_player: StartPlayer) -> None:
    sink = PullingSink()
    player = Player(sink, prebuffer_ms=40)
    track = QueueTrack()
    await run_player(player, track)
    player.mark_response("r1")
    await feed(player, track, LOUD[:19200])  # 400 ms queued
    sink.tick(5)
    player.flush()
    fade = sink.tick(1)[:, 0]
    head, tail = fade[:48], fade[-48:]
    assert rms(head) > 0.15 and rms(tail) < 0.02 and rms(tail) < rms(head) / 10  # faded inside the block
    assert not sink.tick(10).any()  # then silent: nothing of the 340 ms still queued plays
    assert not player.is_playing
    assert player.played_ms("r1") == pytest.approx(55)  # 50 ms + the 5 ms fade; the rest was dropped
    assert player.buffered_ms <= 1


async def test_audio_in_flight_after_flush_is_discarded_until_a_new_response(run_player: StartPlayer) -> None:
    sink = PullingSink()
    player = Player(sink, prebuffer_ms=40)
    track = QueueTrack()
    await run_player(player, track)
    player.mark_response("r1")
    await feed(player, track, LOUD[:9600])
    sink.tick(3)
    player.flush()
    await feed(player, track, LOUD[9600:14400])  # 100 ms of r1's tail still arriving from the server
    assert not sink.tick(20)[480:].any()
    assert not player.is_playing
    player.mark_response("r2")
    await feed(player, track, LOUD[:4800])
    assert sink.tick(20).any()
    assert player.played_ms("r2") == pytest.approx(100)
    assert player.played_ms("r1") == pytest.approx(35)  # 30 ms + the 5 ms fade


async def test_hold_after_flush_ends_when_the_remote_side_goes_quiet(run_player: StartPlayer) -> None:
    sink = PullingSink()
    player = Player(sink, prebuffer_ms=0)
    track = QueueTrack()
    await run_player(player, track)
    await feed(player, track, LOUD[:4800])
    sink.tick(2)
    player.flush()
    sink.tick(1)
    await feed(player, track, np.zeros(48 * tracks.HOLD_SILENCE_MS, dtype=np.int16))  # the cancelled stream ended
    await feed(player, track, LOUD[:4800])  # whatever comes next is new audio
    assert sink.tick(int(tracks.HOLD_SILENCE_MS / 10) + 20).any()


async def test_hold_after_flush_is_bounded_in_time(run_player: StartPlayer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracks, "HOLD_MAX_S", 0.0)
    sink = PullingSink()
    player = Player(sink, prebuffer_ms=0)
    track = QueueTrack()
    await run_player(player, track)
    player.flush()
    await feed(player, track, LOUD[:4800])
    assert sink.tick(10).any()


async def test_idle_silence_is_shed_so_latency_cannot_grow(run_player: StartPlayer) -> None:
    sink = PullingSink()
    player = Player(sink, prebuffer_ms=80)
    track = QueueTrack()
    await run_player(player, track)
    await feed(player, track, np.zeros(48000, dtype=np.int16))  # 1 s of silence, nobody pulling
    assert player.frames_received == 50  # drained regardless
    assert player.buffered_ms <= 80 + tracks.DRIFT_SLACK_MS + 20
    await feed(player, track, LOUD[:48000])  # speech is never shed
    assert player.buffered_ms >= 1000


async def test_run_returns_when_the_track_ends(run_player: StartPlayer) -> None:
    sink = PullingSink()
    player = Player(sink)
    track = QueueTrack()
    task = await run_player(player, track)
    await feed(player, track, LOUD[:960])
    track.end()
    async with asyncio.timeout(BOUND_S):
        await task
    assert player.frames_received == 1


async def test_a_failing_file_sink_ends_run_with_its_one_line_error(run_player: StartPlayer) -> None:
    class FullDisk(RecordingSink):
        def write(self, pcm: np.ndarray) -> None:
            raise AudioError("cannot write output file out.wav: No space left on device")

    player = Player(FullDisk(), prebuffer_ms=0)
    task = await run_player(player, QueueTrack())
    with pytest.raises(AudioError, match="No space left"):
        async with asyncio.timeout(BOUND_S):
            await task
