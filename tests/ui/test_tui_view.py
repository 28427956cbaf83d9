"""The pure half of the terminal UI: the View buffer, the status model, line rendering, log entries."""

from __future__ import annotations

from typing import get_args

import pytest
from tui_fakes import msg

from voicecoach.coach.actions import (
    METRIC_LABELS,
    FlushPlayback,
    Metric,
    MetricName,
    Notice,
    StatusChanged,
    TranscriptChanged,
)
from voicecoach.coach.state import State
from voicecoach.ui.metrics import describe_metric
from voicecoach.ui.tui_view import Info, LogEntry, Pending, StatusModel, TuiView, log_entries, render_message
from voicecoach.ui.view import View, VoiceOutput

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
    status.on_reconnecting()  # the Reconnecting action
    status.on_state(S.DISCONNECTED)
    assert status.connection == "reconnecting"
    status.on_state(S.LISTENING)
    assert status.connection == "connected" and not status.reconnecting


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
    assert "hint → audio — │ gpt-x │ cost —" in status.render().plain
    status.on_metric(Metric("hint.trigger_to_audible_ms", 1234.4))
    status.on_metric(Metric("hint.trigger_to_server_audio_ms", 99.0))  # the server's figure: not the headline
    status.on_metric(Metric("hint.interrupt_to_silence_ms", 9.0))
    status.on_metric(Metric("response.cost_usd", 0.5, {"total_usd": 0.75}))
    assert status.hint_latency_ms == 1234.4 and status.cost_usd == 0.75
    status.on_metric(Metric("response.cost_usd", 0.25))  # no total given: keep a running sum
    assert status.cost_usd == 1.0
    assert "hint → audio 1234 ms │ gpt-x │ cost $1.0000" in status.render().plain


ESSENTIALS = ("listening", "speaking", "muted")


@pytest.mark.parametrize("state", [S.DISCONNECTED, S.CONNECTING, S.LISTENING, S.SPEAKING, S.MUTED])
@pytest.mark.parametrize("voice", [None, VoiceOutput("none"), VoiceOutput("file", "/tmp/a/very/long/hints.wav")])
def test_status_keeps_connection_indicators_and_cost_at_80_columns(state: State, voice: VoiceOutput | None) -> None:
    status = StatusModel(model="gpt-realtime-1.5-with-a-long-name", voice=voice)
    status.on_state(S.LISTENING)
    status.on_state(state)
    if state is S.CONNECTING:
        status.reconnecting = True  # the longest connection word
    status.on_metric(Metric("hint.trigger_to_audible_ms", 1234.0))
    status.on_metric(Metric("response.cost_usd", 12.5, {"total_usd": 123.4567}))
    line = status.render(width=80).plain
    assert len(line) <= 80
    assert f"● {status.connection}" in line
    for word in ESSENTIALS:
        assert word in line, (word, line)
    assert "$123.4567" in line


def test_status_gives_way_in_order_model_then_labels_then_voice_then_latency() -> None:
    status = StatusModel(model="gpt-realtime-1.5", voice=VoiceOutput("none"))
    status.on_state(S.LISTENING)
    status.on_metric(Metric("hint.trigger_to_audible_ms", 230.0))
    full = status.render().plain
    assert "gpt-realtime-1.5" in full and "hint → audio 230 ms" in full and "voice not played" in full
    assert status.render(width=len(full)).plain == full
    assert "gpt-realtime-1.5" not in status.render(width=len(full) - 1).plain
    status.on_metric(Metric("response.cost_usd", 0.0074))
    at_80 = status.render(width=80).plain
    assert at_80 == " ● connected │ ◉ listening ○ speaking ○ muted │ hint 230 ms │ no voice │ $0.0074"
    at_60 = status.render(width=60).plain
    assert at_60 == " ● connected │ ◉ listening ○ speaking ○ muted │ $0.0074"
    at_40 = status.render(width=40).plain
    assert len(at_40) == 40 and at_40.startswith(" ● connected │ ◉ listening")  # cut at the edge, never wrapped


def test_voice_output_says_where_the_voice_goes() -> None:
    assert VoiceOutput("file", "out/hints.wav").line() == "the coach's voice goes to out/hints.wav"
    assert VoiceOutput("file", "out/hints.wav").short() == "voice → hints.wav"
    assert VoiceOutput("device").line() == "the coach's voice goes to the default output device"
    assert VoiceOutput("none").line().startswith("no sound device: the coach's voice is not played")


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


def test_render_message_names_the_other_side_by_its_label() -> None:
    assert render_message(msg("1", "them", "Next question.", done=True), True).plain == "Them: Next question."
    them = render_message(msg("1", "them", "Next", label="Interviewer"), False)
    assert them.plain == "Interviewer: Next …"
    you = render_message(msg("1", "user", "a"), True)
    assert len({them.spans[0].style, you.spans[0].style}) == 2


def test_transcription_cost_counts_in_the_status_bar_and_names_its_channel() -> None:
    status = StatusModel(model="m")
    status.on_metric(Metric("transcription.cost_usd", 0.0001, {"channel": "them", "total_usd": 0.0321}))
    assert status.cost_usd == 0.0321
    text = describe_metric(Metric("transcription.cost_usd", 0.0001, {"channel": "them", "total_usd": 0.0321}))
    assert text == "transcription cost $0.0001 (total $0.0321) (them)"


def test_log_entries_cover_notices_metrics_states_and_info() -> None:
    batch: list[Pending] = [
        (Notice("error", "boom", {"code": "x"}), 10.5),
        (Metric("hint.trigger_to_audible_ms", 412.25, {"tier": "quick", "hint": 2}), 11.0),
        (StatusChanged(S.LISTENING, S.CONNECTING), 11.5),
        (Info("connecting"), 11.5),
        (FlushPlayback(asked_at=1.0), 12.0),  # not for the log
        (TranscriptChanged(msg("1", "user", "x"), False), 12.0),  # the transcript shows it
    ]
    entries = list(log_entries(batch, t0=10.0))
    assert entries == [
        LogEntry(0.5, "notice/error", "boom {'code': 'x'}", "bold red"),
        LogEntry(1.0, "metric", "hint started speaking after 412 ms (quick hint #2)"),
        LogEntry(1.5, "state", "connecting → listening"),
        LogEntry(1.5, "info", "connecting"),
    ]
    assert entries[0].matches("ERROR") and entries[1].matches("hint") and not entries[1].matches("notice")
    assert entries[1].render().plain == "   1.000 metric         hint started speaking after 412 ms (quick hint #2)"


@pytest.mark.parametrize(
    ("metric", "text"),
    [
        (Metric("hint.trigger_to_send_ms", 2.14), "hint requested after 2.1 ms"),
        (Metric("hint.trigger_to_server_audio_ms", 180.4), "server started the hint's audio after 180 ms"),
        (Metric("hint.interrupt_to_silence_ms", 38.5), "silent after the interrupt in 38 ms"),
        (Metric("response.cost_usd", 0.0031, {"total_usd": 0.0074}), "response cost $0.0031 (total $0.0074)"),
        (Metric("response.input_tokens", 1234.0), "response input tokens 1234"),
    ],
)
def test_metrics_read_as_words(metric: Metric, text: str) -> None:
    assert describe_metric(metric) == text
    assert "_" not in text


def test_every_metric_name_has_words() -> None:
    assert set(get_args(MetricName)) == set(METRIC_LABELS)
