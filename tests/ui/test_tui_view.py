"""The pure half of the terminal UI: the View buffer, the status model, line rendering, log entries."""

from __future__ import annotations

from tui_fakes import msg

from voicecoach.coach.actions import FlushPlayback, Metric, Notice, StatusChanged, TranscriptChanged
from voicecoach.coach.state import State
from voicecoach.ui.tui_view import Info, LogEntry, Pending, StatusModel, TuiView, log_entries, render_message
from voicecoach.ui.view import View

S = State


def test_tui_view_only_buffers_until_drained() -> None:
    view: View = TuiView()
    notice = Notice("info", "a")
    view.show(notice, 1.5)
    view.info("connecting to http://127.0.0.1:1/v1")
    assert isinstance(view, TuiView)
    assert view.pending == 2 and view.last_now == 1.5
    assert view.drain() == [(notice, 1.5), (Info("connecting to http://127.0.0.1:1/v1"), 1.5)]
    assert view.drain() == [] and view.pending == 0


def test_connection_is_derived_from_state_and_reconnect_notices() -> None:
    status = StatusModel(model="m")
    assert status.connection == "disconnected"
    status.on_state(S.CONNECTING)
    assert status.connection == "connecting"
    status.on_state(S.LISTENING)
    assert status.connection == "connected"
    status.on_state(S.CONNECTING)
    assert status.connection == "reconnecting"
    status.on_state(S.LISTENING)
    status.on_notice(Notice("warning", "lost; retrying", {"reconnecting": True}))
    status.on_state(S.DISCONNECTED)
    assert status.connection == "reconnecting"
    status.on_notice(Notice("warning", "giving up", {"reconnecting": False}))
    assert status.connection == "disconnected"
    status.on_notice(Notice("info", "unrelated", {"reconnecting": "yes"}))  # not a bool: ignored
    assert status.connection == "disconnected"


def test_indicators() -> None:
    status = StatusModel(model="m")
    seen = {}
    for state in State:
        status.on_state(state)
        seen[state] = (status.listening, status.speaking, status.muted)
    assert seen == {
        S.DISCONNECTED: (False, False, False),
        S.CONNECTING: (False, False, False),
        S.LISTENING: (True, False, False),
        S.SPEAKING: (True, True, False),
        S.MUTED: (False, False, True),
    }


def test_metrics_set_latency_and_total_cost() -> None:
    status = StatusModel(model="gpt-x")
    assert "hint — │ cost —" in status.render().plain
    status.on_metric(Metric("hint.create_to_audio_ms", 1234.4))
    status.on_metric(Metric("hint.interrupt_to_silence_ms", 9.0))
    status.on_metric(Metric("response.cost_usd", 0.5, {"total_usd": 0.75}))
    assert status.hint_latency_ms == 1234.4 and status.cost_usd == 0.75
    status.on_metric(Metric("response.cost_usd", 0.25))  # no total given: keep a running sum
    assert status.cost_usd == 1.0
    assert "gpt-x │ hint 1234 ms │ cost $1.0000" in status.render().plain


def test_render_message_labels_tiers_and_markers() -> None:
    assert render_message(msg("1", "user", " hello "), final=False).plain == "You: hello …"
    assert render_message(msg("1", "user", "hello"), final=True).plain == "You: hello"
    assert render_message(msg("1", "user", "hello", done=True), final=False).plain == "You: hello"
    assert render_message(msg("2", "coach", "hi", tier="quick", done=True), True).plain == "Coach · quick hint: hi"
    assert render_message(msg("2", "coach", "hi", tier="full"), False).plain == "Coach · full guidance: hi …"
    assert render_message(msg("2", "coach", "hi"), True).plain == "Coach: hi"
    cut = render_message(msg("2", "coach", "hi", tier="quick", interrupted=True), True)
    assert cut.plain == "Coach · quick hint: hi [interrupted]"
    you, coach = render_message(msg("1", "user", "a"), True), render_message(msg("2", "coach", "b"), True)
    assert you.spans[0].style != coach.spans[0].style  # distinct label styles


def test_log_entries_cover_notices_metrics_states_and_info() -> None:
    batch: list[Pending] = [
        (Notice("error", "boom", {"code": "x"}), 10.5),
        (Metric("hint.create_to_audio_ms", 412.25, {"tier": "quick"}), 11.0),
        (StatusChanged(S.LISTENING, S.CONNECTING), 11.5),
        (Info("connecting"), 11.5),
        (FlushPlayback(asked_at=1.0), 12.0),  # not for the log
        (TranscriptChanged(msg("1", "user", "x"), False), 12.0),  # the transcript shows it
    ]
    entries = list(log_entries(batch, t0=10.0))
    assert entries == [
        LogEntry(0.5, "notice/error", "boom {'code': 'x'}", "bold red"),
        LogEntry(1.0, "metric/hint.create_to_audio_ms", "412.25 tier=quick"),
        LogEntry(1.5, "state", "connecting → listening"),
        LogEntry(1.5, "session/info", "connecting"),
    ]
    assert entries[0].matches("ERROR") and entries[1].matches("hint") and not entries[1].matches("notice")
    assert entries[1].render().plain.split() == ["1.000", "metric/hint.create_to_audio_ms", "412.25", "tier=quick"]
