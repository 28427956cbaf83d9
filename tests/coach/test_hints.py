"""The hint prompt, pure: the window text, the request, claiming responses, the carry-over, the hint list."""

from __future__ import annotations

from typing import Any

from voicecoach.coach.actions import Notice
from voicecoach.coach.conversation import Conversation
from voicecoach.coach.hints import Hints, carry_over, claim, hint_request, release, render_window, window_input
from voicecoach.coach.settings import CoachSettings
from voicecoach.coach.timing import PENDING_TIMEOUT_S
from voicecoach.protocol import client_events as ce
from voicecoach.protocol.server_events import Response


def said(conv: Conversation, item_id: str, text: str, now: float = 0.0) -> None:
    conv.user_item(item_id, None, now)
    conv.user_completed(item_id, text, now)


def response(id_: str, **metadata: Any) -> Response:
    return Response(id=id_, metadata=metadata or None)


def test_render_window_one_line_per_message() -> None:
    conv = Conversation()
    said(conv, "u1", "  Good question,\nreally.  ")
    conv.coach_done("r1", "Ask\n\nabout the budget.", 1.0)
    conv.user_failed("u2", 2.0)
    assert render_window(conv.messages()) == "You: Good question, really.\nCoach: Ask about the budget."
    assert render_window([]) == ""


def test_render_window_marks_an_interrupted_hint() -> None:
    conv = Conversation()
    conv.coach_delta("r1", "First, ", 1.0)
    conv.coach_done("r1", None, 1.5, interrupted=True)
    assert render_window(conv.messages()) == "Coach (interrupted): First,"


def test_the_request_carries_the_tier_window_and_budget() -> None:
    conv = Conversation()
    for i in range(4):
        said(conv, f"u{i}", f"line {i}")
    hints = Hints()
    settings = CoachSettings(full_window=2)
    hint = hints.new("full", 5.0)
    request = hint_request(hint, conv, settings, server_items=set())
    assert request.event_id == "vc_hint_1"
    params = request.response
    assert params is not None and params.metadata == {"voicecoach_tier": "full", "voicecoach_hint": "1"}
    assert params.instructions == settings.full_instructions
    assert params.max_output_tokens == settings.max_output_tokens("full")
    [item] = params.input or []
    assert isinstance(item, ce.UserMessage)
    assert item.content[0].text.endswith("You: line 2\nYou: line 3")


def test_references_only_for_items_the_server_still_has() -> None:
    conv = Conversation()
    said(conv, "u1", "old session")
    said(conv, "u2", "this session")
    conv.coach_done("r1", "a hint", 1.0)
    settings = CoachSettings(window_mode="references")
    items = window_input(conv.window(3), settings, server_items={"u2"})
    assert [type(i) for i in items] == [ce.UserMessage, ce.ItemReference, ce.AssistantMessage]
    assert window_input([], settings, set()) == [ce.user_text("(nothing has been said yet)")]


def test_claim_by_number_then_tier_then_oldest_and_never_a_stranger() -> None:
    hints = Hints()
    first, second = hints.new("quick", 0.0), hints.new("full", 0.0)
    assert claim(hints, response("r", voicecoach_hint="2")) is second
    assert claim(hints, response("r", voicecoach_tier="quick")) is first
    assert claim(hints, response("r")) is first  # no metadata echoed: the oldest pending request
    assert claim(hints, response("r", purpose="summary")) is None
    first.response_id = "r1"
    assert claim(hints, response("r", voicecoach_hint="1")) is None  # already answered


def test_carry_over_only_from_the_second_session_and_only_with_history() -> None:
    conv = Conversation()
    settings = CoachSettings()
    assert carry_over(conv, settings, 2) is None  # nothing said yet
    said(conv, "u1", "the budget is fixed")
    assert carry_over(conv, settings, 1) is None
    event = carry_over(conv, settings, 3)
    assert event is not None and event.event_id == "vc_history_3"
    assert isinstance(event.item, ce.SystemMessage)
    assert "You: the budget is fixed" in event.item.content[0].text


def test_a_silent_hint_is_dropped_at_its_deadline_and_not_before() -> None:
    hints = Hints()
    hint = hints.new("quick", 10.0)
    assert hints.deadline() == 10.0 + PENDING_TIMEOUT_S
    assert hints.drop_silent(10.0 + PENDING_TIMEOUT_S - 0.01) == []
    hint.last_heard_at = 12.0  # a sign of life moves it
    assert hints.deadline() == 12.0 + PENDING_TIMEOUT_S
    hint.audio_started_at = 13.0  # playing: never dropped as silent
    assert hints.deadline() is None and hints.drop_silent(1e9) == []
    hint.audio_started_at = None
    assert hints.drop_silent(12.0 + PENDING_TIMEOUT_S) == [hint] and not hints


def test_a_held_line_is_released_once() -> None:
    hints = Hints()
    hint = hints.new("quick", 0.0, heard_in="u1")
    hint.held = Notice("info", "quick hint #1 requested")
    assert release(hints) == [Notice("info", "quick hint #1 requested")]
    assert release(hints) == []
