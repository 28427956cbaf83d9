"""Player: resampling, pre-buffer, flush with fade, the hold after flush, accounting, and file timelines.

Most tests use :class:`PullingSink`, whose "audio callback" is the test itself, so every block is
deterministic. The file-sink tests run the Player's wall-clock pump.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

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


# --- events: on_audible and on_sounding ------------------------------------------------------------------


class Clock:
    """A clock the test moves: every event time is one of its readings."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Events:
    def __init__(self) -> None:
        self.audible: list[tuple[str | None, float]] = []
        self.sounding: list[tuple[bool, float]] = []

    def on_audible(self, response_id: str | None, at: float) -> None:
        self.audible.append((response_id, at))

    def on_sounding(self, sounding: bool, at: float) -> None:
        self.sounding.append((sounding, at))


def evented_player(sink: object, clock: Clock, events: Events, prebuffer_ms: int = 40) -> Player:
    return Player(
        sink,  # type: ignore[arg-type]  # the fakes are structural sinks
        prebuffer_ms=prebuffer_ms,
        clock=clock,
        on_audible=events.on_audible,
        on_sounding=events.on_sounding,
    )


async def test_on_audible_fires_once_per_response_when_its_first_loud_sample_is_pulled(
    run_player: StartPlayer,
) -> None:
    sink, clock, events = PullingSink(), Clock(), Events()
    player = evented_player(sink, clock, events)
    track = QueueTrack()
    await run_player(player, track)
    player.mark_response("r1")
    await feed(player, track, np.concatenate([np.zeros(960, dtype=np.int16), LOUD[:9600]]))  # 20 ms quiet first
    assert events.audible == []  # received is not audible: nothing was handed to the output yet
    clock.now = 101.0
    sink.tick(1)  # 10 ms: still the quiet lead-in
    assert events.audible == []
    clock.now = 102.0
    sink.tick(2)  # reaches the first loud sample
    assert events.audible == [("r1", 102.0)]
    assert player.first_audio_at == 102.0  # + the sink's output latency (0 here)
    clock.now = 103.0
    sink.tick(5)
    assert events.audible == [("r1", 102.0)]  # once
    player.mark_response("r2")
    await feed(player, track, LOUD[:4800])
    clock.now = 104.0
    sink.tick(20)
    assert events.audible == [("r1", 102.0), ("r2", 104.0)]


async def test_on_sounding_reports_start_and_the_hand_over_of_the_last_loud_sample(run_player: StartPlayer) -> None:
    sink, clock, events = PullingSink(), Clock(), Events()
    player = evented_player(sink, clock, events, prebuffer_ms=0)
    track = QueueTrack()
    await run_player(player, track)
    # 40 ms loud, a 20 ms pause, 40 ms loud (short enough that the pause is not shed as idle silence), then dry.
    await feed(player, track, np.concatenate([LOUD[:1920], np.zeros(960, dtype=np.int16), LOUD[:1920]]))
    for i in range(15):
        clock.now = 200.0 + i
        sink.tick(1)
        if i == 2:
            assert player.is_playing
        if i == 5:
            assert not player.is_playing
    # Blocks 0-3 loud, 4-5 the pause, 6-9 loud: sound starts at blocks 0 and 6 and stops at the block that held
    # the last loud sample of each run (3 and 9), not at the first quiet one.
    assert events.sounding == [(True, 200.0), (False, 203.0), (True, 206.0), (False, 209.0)]


async def test_a_flush_reports_silence_at_the_block_that_handed_over_the_fade(run_player: StartPlayer) -> None:
    sink, clock, events = PullingSink(), Clock(), Events()
    player = evented_player(sink, clock, events)
    track = QueueTrack()
    await run_player(player, track)
    assert player.flush() is False  # nothing sounding: no on_sounding(False) is owed
    player.mark_response("r1")
    await feed(player, track, LOUD[:19200])
    clock.now = 300.0
    sink.tick(5)
    assert events.sounding == [(True, 300.0)]
    assert player.flush() is True
    assert events.sounding == [(True, 300.0)]  # the fade has not been handed over yet
    clock.now = 300.5
    sink.tick(1)  # the fade
    assert events.sounding == [(True, 300.0), (False, 300.5)]
    clock.now = 301.0
    sink.tick(10)
    assert len(events.sounding) == 2 and not player.is_playing


async def test_a_file_sink_reports_audible_when_the_sample_is_written(run_player: StartPlayer) -> None:
    sink = RecordingSink(rate=24000, channels=1)
    seen: list[tuple[str | None, int]] = []

    def on_audible(response_id: str | None, at: float) -> None:
        # Handed over means written: the loud sample is in the file's data at this moment.
        seen.append((response_id, int(np.abs(sink.pcm.astype(np.int32)).max())))

    player = Player(sink, prebuffer_ms=40, on_audible=on_audible)
    track = QueueTrack()
    task = await run_player(player, track)
    player.mark_response("r1")
    await feed(player, track, tone(200))
    await wait_for(lambda: bool(seen), what="on_audible")
    assert seen[0][0] == "r1" and seen[0][1] > tracks.SILENCE_PEAK
    track.end()
    async with asyncio.timeout(BOUND_S):
        await task
    assert len(seen) == 1


class ThreadedSink(PullingSink):
    """A PullSink pulled from its own thread every few ms, like a sound card's callback."""

    def __init__(self) -> None:
        super().__init__(block_ms=5)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pull: Callable[[np.ndarray], None]) -> None:
        super().start(pull)

        def run() -> None:
            while not self._stop.wait(0.005):
                pull(self.block)

        self._thread = threading.Thread(target=run, name="fake-audio", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(BOUND_S)


async def test_events_from_an_audio_thread_arrive_on_the_loop_thread_and_idle_costs_no_wakeups(
    run_player: StartPlayer,
) -> None:
    sink, threads = ThreadedSink(), []
    player = Player(sink, prebuffer_ms=20)
    player.on_audible = lambda rid, at: threads.append(("audible", threading.get_ident()))
    player.on_sounding = lambda on, at: threads.append((f"sounding {on}", threading.get_ident()))
    wakeups = 0
    pulled = player._pulled

    def counting(read: int, at: float) -> None:
        nonlocal wakeups
        wakeups += 1
        pulled(read, at)

    player._pulled = counting  # type: ignore[method-assign]  # count the loop's wake-ups for the device
    track = QueueTrack()
    try:
        await run_player(player, track)
        await feed(player, track, np.zeros(9600, dtype=np.int16))  # 200 ms of silence: nothing to report
        await asyncio.sleep(0.2)
        assert wakeups == 0 and threads == []
        player.mark_response("r1")
        await feed(player, track, LOUD[:4800])
        await wait_for(lambda: len(threads) >= 3, what="audible, sounding and silence from the audio thread")
    finally:
        sink.close()
    me = threading.get_ident()
    assert [name for name, _ in threads] == ["sounding True", "audible", "sounding False"]
    assert all(ident == me for _, ident in threads)
    assert player.played_ms("r1") == pytest.approx(100)
