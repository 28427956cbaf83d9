"""Line mode's view: metrics read as words, like the full-screen UI's event log."""

from __future__ import annotations

import io

from voicecoach.coach.actions import Metric, Notice, Send, TranscriptChanged
from voicecoach.coach.coach import Coach
from voicecoach.coach.conversation import Message
from voicecoach.protocol.server_events import parse_server_dict
from voicecoach.ui.plain import PlainView


def test_metric_lines_are_words_a_user_reads() -> None:
    out = io.StringIO()
    view = PlainView(out)
    view.show(Metric("hint.trigger_to_send_ms", 2.14, {"tier": "quick", "hint": 1}), 1.0)
    view.show(Notice("info", "quick hint #1 requested"), 1.0)  # the send figure follows this line
    view.show(Metric("hint.trigger_to_audible_ms", 231.0, {"tier": "quick", "hint": 1}), 1.2)
    view.show(Metric("hint.trigger_to_server_audio_ms", 180.0, {"tier": "quick", "hint": 1}), 1.2)
    view.show(Metric("response.cost_usd", 0.0031, {"total_usd": 0.0074}), 1.3)  # the summary prices the run
    assert out.getvalue().splitlines() == [
        "· quick hint #1 requested",
        "· hint requested after 2.1 ms (quick hint #1)",
        "· hint started speaking after 231 ms (quick hint #1)",
        "· server started the hint's audio after 180 ms (quick hint #1)",
    ]


def test_the_requested_line_and_its_figure_follow_the_words_that_fired_it() -> None:
    """The request goes out on the phrase's delta; its lines wait for the utterance's transcript line."""
    out = io.StringIO()
    view = PlainView(out)
    coach = Coach()

    def feed(event: dict[str, object], now: float) -> None:
        for action in coach.handle(parse_server_dict({"event_id": "e", **event}), now):
            view.show(action, now)
            if isinstance(action, Send) and action.asked_at is not None:  # what the executor adds
                view.show(Metric("hint.trigger_to_send_ms", 0.4), now)

    for action in coach.connect(0.0):
        view.show(action, 0.0)
    feed({"type": "session.updated", "session": {}}, 0.1)
    feed({"type": "input_audio_buffer.speech_started", "item_id": "u1", "audio_start_ms": 0}, 0.2)
    delta = "conversation.item.input_audio_transcription.delta"
    feed({"type": delta, "item_id": "u1", "content_index": 0, "delta": "Good question."}, 1.0)
    done = "conversation.item.input_audio_transcription.completed"
    feed({"type": done, "item_id": "u1", "content_index": 0, "transcript": "Good question."}, 1.2)
    lines = [line for line in out.getvalue().splitlines() if not line.startswith("[")]
    you = lines.index("You: Good question.")
    requested = next(i for i, line in enumerate(lines) if "#1 requested" in line)
    figure = next(i for i, line in enumerate(lines) if "hint requested after" in line)
    assert you < requested < figure, lines


def test_both_speakers_are_labelled_and_their_item_ids_do_not_collide() -> None:
    """Two links name their items independently: the other side's ``item_1`` is not the user's."""
    out = io.StringIO()
    view = PlainView(out)
    view.show(TranscriptChanged(Message("item_1", "user", "Good question.", done=True), final=True), 1.0)
    view.show(TranscriptChanged(Message("item_1", "them", "Why?", done=True, label="Interviewer"), final=True), 1.1)
    view.show(TranscriptChanged(Message("item_2", "them", "Next.", done=True), final=True), 1.2)
    view.show(TranscriptChanged(Message("item_3", "them", "", done=True), final=True), 1.3)  # retracted: nothing
    assert out.getvalue().splitlines() == ["You: Good question.", "Interviewer: Why?", "Them: Next."]
