"""Deadlines with explicit ``now``: rollover (due, quiet, hard limit), playback hang-over, lost hints, --duration.

First the clocks of timing.py on their own, then the coach's ``next_deadline()``/``tick(now)`` that drive them.
"""

from __future__ import annotations

from typing import Any

import pytest

from voicecoach.coach.actions import Action, EndSession, Intent, Metric, Notice, Reconnect, StatusChanged
from voicecoach.coach.coach import Coach
from voicecoach.coach.settings import CoachSettings
from voicecoach.coach.state import State
from voicecoach.coach.timing import (
    PENDING_TIMEOUT_S,
    PLAYBACK_HANGOVER_S,
    ROLLOVER_REASON,
    Duration,
    HangOver,
    Rollover,
    TimingSettings,
    earliest,
)
from voicecoach.protocol.server_events import parse_server_dict


def ev(type_: str, **fields: Any) -> Any:
    return parse_server_dict({"type": type_, **fields})


# --- the clocks -------------------------------------------------------------------------------------------


def test_rollover_waits_for_quiet_between_due_and_the_hard_limit() -> None:
    r = Rollover(session_max_seconds=100, margin_seconds=20)
    assert r.deadline(quiet=True) is None and not r.fire(1e9, quiet=True)  # not armed before a link opens
    r.opened(1000.0)
    assert (r.due, r.hard) == (1080.0, 1090.0)
    assert r.deadline(quiet=True) == 1080.0 and r.deadline(quiet=False) == 1090.0
    assert not r.fire(1079.9, quiet=True)  # not due yet
    assert not r.fire(1085.0, quiet=False)  # due, but busy
    assert r.fire(1085.0, quiet=True)  # due and quiet
    assert not r.fire(1086.0, quiet=True) and r.deadline(quiet=True) is None  # once per link


def test_rollover_hard_limit_fires_even_when_busy() -> None:
    r = Rollover(100, 20)
    r.opened(0.0)
    assert not r.fire(89.99, quiet=False)
    assert r.fire(90.0, quiet=False)


def test_rollover_never_before_a_share_of_the_maximum() -> None:
    r = Rollover(session_max_seconds=5, margin_seconds=60)  # a margin longer than the session itself
    r.opened(0.0)
    assert r.due == pytest.approx(1.0)  # ROLLOVER_MIN_SHARE (0.2) of 5 s
    assert r.hard == pytest.approx(3.0)
    r.closed()
    assert r.deadline(quiet=True) is None


def test_hang_over_ignores_the_pause_between_sentences() -> None:
    h = HangOver()
    assert h.edge(True, 1.0) is True  # playing starts
    assert h.edge(False, 2.0) is False and h.deadline() == 2.0 + PLAYBACK_HANGOVER_S
    assert not h.fire(2.0 + PLAYBACK_HANGOVER_S - 0.01)
    assert h.edge(True, 2.5) is False  # sound again within the hang-over: still the same playing
    assert h.deadline() is None and h.playing
    h.edge(False, 3.0)
    h.edge(False, 3.5)  # a repeated "stopped" does not move the start of the quiet
    assert h.fire(3.0 + PLAYBACK_HANGOVER_S) and not h.playing
    assert not h.fire(100.0) and h.deadline() is None  # once
    assert h.edge(False, 101.0) is False and h.deadline() is None  # silence while not playing: nothing to end


def test_duration_counts_from_the_first_start_and_fires_once() -> None:
    d = Duration(30.0)
    assert d.deadline() is None
    d.start(10.0)
    d.start(20.0)  # a reconnect does not restart it
    assert d.deadline() == 40.0
    assert not d.fire(39.9) and d.fire(40.0) and not d.fire(41.0)
    assert d.deadline() is None and d.reason == "--duration 30 s reached"
    none = Duration(None)
    none.start(0.0)
    assert none.deadline() is None and not none.fire(1e9)


def test_timing_settings_refuse_nonsense_and_earliest_skips_none() -> None:
    with pytest.raises(ValueError, match="session_max_seconds"):
        TimingSettings(session_max_seconds=0)
    with pytest.raises(ValueError, match="duration_seconds"):
        TimingSettings(duration_seconds=-1)
    assert earliest(None, 3.0, None, 2.0) == 2.0 and earliest(None) is None


# --- the coach's deadlines ----------------------------------------------------------------------------------


class Live:
    """A coach with short limits, live from t=100 (session.updated)."""

    def __init__(self, **timing: Any) -> None:
        limits = {"session_max_seconds": 100.0, "rollover_margin_seconds": 20.0, **timing}
        self.coach = Coach(CoachSettings(cooldown_seconds=0), timing=TimingSettings(**limits))
        self.coach.connect(99.0)
        self.coach.handle(ev("session.updated", session={"type": "realtime"}), 100.0)

    def hint(self, now: float, rid: str = "resp_1") -> None:
        self.coach.command(Intent.QUICK_HINT, now)
        self.coach.handle(ev("response.created", response={"id": rid}), now)

    def tick_at_deadline(self) -> tuple[float, list[Action]]:
        deadline = self.coach.next_deadline()
        assert deadline is not None
        return deadline, self.coach.tick(deadline)


def test_rollover_is_due_on_a_quiet_link() -> None:
    live = Live()
    assert live.coach.next_deadline() == 180.0  # session.updated + 100 - 20
    assert live.coach.tick(179.0) == []
    assert live.coach.tick(180.0) == [Reconnect(ROLLOVER_REASON)]
    assert live.coach.next_deadline() is None  # spent until the next link is ready


def test_rollover_waits_for_the_hint_and_the_user_turn_then_goes_at_once() -> None:
    live = Live()
    live.coach.handle(ev("input_audio_buffer.speech_started", item_id="u1", audio_start_ms=0), 175.0)
    assert live.coach.next_deadline() == 190.0  # a turn awaits its transcript: only the hard limit counts
    assert live.coach.tick(181.0) == []
    live.coach.handle(ev("conversation.item.input_audio_transcription.completed", item_id="u1", transcript="hm"), 182)
    assert live.coach.next_deadline() == 180.0  # quiet again and already due: tick now
    assert live.coach.tick(182.0) == [Reconnect(ROLLOVER_REASON)]


def test_rollover_hard_limit_cuts_a_long_hint() -> None:
    live = Live()
    live.hint(178.0)
    live.coach.handle(ev("output_audio_buffer.started", response_id="resp_1"), 178.5)
    assert live.coach.busy and live.coach.next_deadline() == 190.0
    assert live.coach.tick(189.9) == []
    assert Reconnect(ROLLOVER_REASON) in live.coach.tick(190.0)


def test_a_new_link_rearms_the_rollover_from_its_own_session_updated() -> None:
    live = Live()
    live.coach.tick(180.0)
    live.coach.disconnected(180.5, "rolled over")
    live.coach.connect(181.0)
    assert live.coach.next_deadline() is None  # connecting: no rollover yet
    live.coach.handle(ev("session.updated", session={"type": "realtime"}), 182.0)
    assert live.coach.next_deadline() == 262.0


def test_a_lost_request_is_dropped_at_its_deadline() -> None:
    live = Live()
    live.coach.command(Intent.QUICK_HINT, 110.0)
    assert live.coach.next_deadline() == 110.0 + PENDING_TIMEOUT_S
    at, out = live.tick_at_deadline()
    assert at == 110.0 + PENDING_TIMEOUT_S
    assert [a.text for a in out if isinstance(a, Notice)] == ["hint #1 got no reply from the server; dropped it"]
    assert not live.coach.busy and live.coach.next_deadline() == 180.0


def test_duration_ends_the_run_even_while_reconnecting() -> None:
    live = Live(duration_seconds=50.0)
    assert live.coach.next_deadline() == 149.0  # from the first connect at 99
    live.coach.disconnected(120.0, "connection lost")
    live.coach.connect(121.0)  # reconnecting: not live
    assert live.coach.next_deadline() == 149.0
    assert live.coach.tick(149.0) == [EndSession("--duration 50 s reached")]
    assert live.coach.tick(150.0) == [] and live.coach.next_deadline() is None


def test_the_duration_wins_over_a_rollover_due_at_the_same_time() -> None:
    live = Live(duration_seconds=81.0)  # ends at 180, when the rollover is due too
    assert live.coach.tick(180.0) == [EndSession("--duration 81 s reached")]


def test_playback_hang_over_ends_a_hint_only_after_the_quiet() -> None:
    """A server without output_audio_buffer.*: the end of a hint comes from the player, after the hang-over."""
    live = Live()
    live.hint(110.0)
    live.coach.handle(ev("response.done", response={"id": "resp_1", "status": "completed"}), 110.2)
    out = live.coach.playback(True, 110.3)
    [audible] = [a for a in out if isinstance(a, Metric)]
    assert audible.name == "hint.trigger_to_audible_ms" and audible.value == pytest.approx(300.0)
    assert live.coach.state is State.SPEAKING
    assert live.coach.playback(False, 111.0) == []  # a pause between sentences
    assert live.coach.next_deadline() == pytest.approx(111.0 + PLAYBACK_HANGOVER_S)
    assert live.coach.playback(True, 111.5) == []  # it goes on: the hang-over is cancelled
    assert live.coach.playback(False, 112.0) == []
    assert live.coach.tick(112.5) == [] and live.coach.state is State.SPEAKING
    out = live.coach.tick(112.0 + PLAYBACK_HANGOVER_S)
    assert StatusChanged(State.LISTENING, State.SPEAKING) in out and not live.coach.busy


def test_server_and_player_latencies_are_two_figures() -> None:
    live = Live()
    live.hint(110.0)
    out = live.coach.handle(ev("output_audio_buffer.started", response_id="resp_1"), 110.25)
    out += live.coach.playback(True, 110.4)
    figures = {a.name: round(a.value) for a in out if isinstance(a, Metric)}
    assert figures == {"hint.trigger_to_server_audio_ms": 250, "hint.trigger_to_audible_ms": 400}


def test_interrupt_to_silence_is_measured_at_the_players_stop_edge() -> None:
    live = Live()
    live.hint(110.0)
    live.coach.playback(True, 110.5)
    live.coach.command(Intent.INTERRUPT, 111.0)
    [silence] = [a for a in live.coach.playback(False, 111.03) if isinstance(a, Metric)]
    assert silence.name == "hint.interrupt_to_silence_ms" and silence.value == pytest.approx(30.0)
    assert [a for a in live.coach.playback(False, 111.1) if isinstance(a, Metric)] == []  # once


def test_a_hint_that_starts_within_the_hang_over_of_the_last_is_still_heard() -> None:
    live = Live()
    live.hint(110.0, "resp_1")
    live.coach.playback(True, 110.5)
    live.coach.command(Intent.QUICK_HINT, 111.0)  # cuts hint 1 off
    live.coach.playback(False, 111.02)
    live.coach.handle(ev("response.created", response={"id": "resp_2"}), 111.1)
    out = live.coach.playback(True, 111.3)  # 0.28 s later: inside the hang-over
    assert [(a.name, a.data["hint"]) for a in out if isinstance(a, Metric)] == [("hint.trigger_to_audible_ms", 2)]
