"""Responses in the core: GA event order, out-of-band vs in-band, cancel, clear, max_output_tokens, usage."""

from __future__ import annotations

from typing import Any

import numpy as np
from tests.server.helpers import Harness, collapse

from voicecoach.audio.frames import rms
from voicecoach.server.session import SessionOptions

MANUAL = {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}
FIRST_REPLY = "Start with the numbers: revenue grew twelve percent."

AUDIO_ORDER = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "response.output_audio_transcript.delta",
    "output_audio_buffer.started",
    "response.output_audio_transcript.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "conversation.item.done",
    "response.output_item.done",
    "response.done",
    "rate_limits.updated",
    "output_audio_buffer.stopped",
]


def manual() -> Harness:
    h = Harness()
    h.send(MANUAL)
    return h


def user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_in_band_audio_response_follows_the_ga_order() -> None:
    h = manual()
    start = len(h.events)
    h.send({"type": "response.create"})
    h.wait_for("output_audio_buffer.stopped")
    assert collapse(h.types(start)) == AUDIO_ORDER
    events = h.events[start:]
    created, done = events[0]["response"], h.of("response.done")[0]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert created["conversation_id"] == done["conversation_id"] == h.session.conversation.id
    part = h.of("response.content_part.added")[0]["part"]
    assert part == {"type": "audio", "transcript": ""}
    deltas = h.of("response.output_audio_transcript.delta")
    assert "".join(d["delta"] for d in deltas) == FIRST_REPLY
    assert all(d["obfuscation"] for d in deltas)
    assert done["status"] == "completed" and done["status_details"] is None
    assert done["output"][0]["content"] == [{"type": "output_audio", "transcript": FIRST_REPLY}]
    assert done["output"][0]["status"] == "completed" and "object" not in done["output"][0]
    assert h.of("output_audio_buffer.started")[0]["event_id"][6:].isalnum()
    assert len(h.of("output_audio_buffer.started")[0]["event_id"]) == len("event_") + 16
    assert h.of("rate_limits.updated")[0]["rate_limits"][0]["name"] == "tokens"
    assert not any(t == "response.output_audio.delta" for t in h.types())  # audio goes over RTP only


def test_response_done_comes_before_playback_ends() -> None:
    h = manual()
    h.send({"type": "response.create"})
    h.wait_for("response.done")
    done_at = h.now
    h.wait_for("output_audio_buffer.stopped")
    heard = np.concatenate(h.heard)
    assert rms(heard) > 0.01
    assert h.now - done_at > 1.0  # still talking well after generation finished (generation_speed=4)


def test_text_response_has_text_parts_and_no_audio() -> None:
    h = manual()
    start = len(h.events)
    h.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    h.wait_for("rate_limits.updated")
    h.quiet(1.0)
    assert collapse(h.types(start)) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    assert h.of("response.content_part.added")[0]["part"] == {"type": "text", "text": ""}
    assert h.of("response.output_text.done")[0]["text"] == FIRST_REPLY
    done = h.of("response.done")[0]["response"]
    assert done["output"][0]["content"] == [{"type": "output_text", "text": FIRST_REPLY}]
    assert done["usage"]["output_token_details"] == {"text_tokens": 13, "audio_tokens": 0}
    assert not h.queue and not any(rms(f) for f in h.heard)


def test_out_of_band_response_leaves_the_conversation_alone_and_round_trips_metadata() -> None:
    h = manual()
    h.send({"type": "conversation.item.create", "item": user_text("earlier")})
    before = [i.id for i in h.session.conversation]
    start = len(h.events)
    params = {
        "conversation": "none",
        "metadata": {"purpose": "hint"},
        "instructions": "Give a hint.",
        "input": [user_text("What should I say?")],
    }
    h.send({"type": "response.create", "response": params})
    h.wait_for("output_audio_buffer.stopped")
    types = h.types(start)
    assert not any(t.startswith("conversation.item.") for t in types)
    assert [i.id for i in h.session.conversation] == before
    created, done = h.of("response.created")[0]["response"], h.of("response.done")[0]["response"]
    assert created["conversation_id"] is None and done["conversation_id"] is None
    assert created["metadata"] == done["metadata"] == {"purpose": "hint"}


def test_only_one_in_band_response_at_a_time_but_out_of_band_ones_overlap() -> None:
    h = manual()
    h.send({"type": "response.create"})
    first = h.of("response.created")[0]["response"]["id"]
    [error] = h.send({"type": "response.create", "event_id": "again"})
    assert error["error"]["code"] == "conversation_already_has_active_response"
    assert error["error"]["event_id"] == "again"
    assert error["error"]["message"] == (
        f"Conversation already has an active response in progress: {first}. "
        "Wait until the response is finished before creating a new one."
    )
    h.send({"type": "response.create", "response": {"conversation": "none"}})
    h.send({"type": "response.create", "response": {"conversation": "none", "output_modalities": ["text"]}})
    assert len(h.of("response.created")) == 3
    for _ in range(3000):
        if len(h.of("response.done")) == 3:
            break
        h.step()
    assert {e["response"]["status"] for e in h.of("response.done")} == {"completed"}


def test_cancel_mid_stream_finishes_items_incomplete() -> None:
    h = manual()
    h.send({"type": "response.create"})
    h.wait_for("response.output_audio_transcript.delta")
    h.wait_for("output_audio_buffer.started")
    start = len(h.events)
    response_id = h.of("response.created")[0]["response"]["id"]
    h.send({"type": "response.cancel", "response_id": response_id})
    assert h.types(start) == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    transcript = done["output"][0]["content"][0]["transcript"]
    assert transcript and FIRST_REPLY.startswith(transcript) and transcript != FIRST_REPLY
    assert done["usage"]["output_tokens"] > 0
    [error] = h.send({"type": "response.cancel"})
    assert error["error"]["code"] == "response_cancel_not_active"
    assert error["error"]["message"] == "Cancellation failed: no active response found"


def test_cancel_before_any_output_costs_nothing() -> None:
    h = Harness(options=SessionOptions(response_latency=0.5))
    h.send(MANUAL)
    h.send({"type": "response.create"})
    [done] = h.send({"type": "response.cancel"})
    response = done["response"]
    assert (response["status"], response["output"]) == ("cancelled", [])
    assert response["usage"]["total_tokens"] == 0 and response["usage"]["input_tokens"] == 0
    h.quiet(1.0)
    assert h.types()[-1] == "response.done"  # nothing more for it, not even rate limits


def test_output_audio_buffer_clear_silences_within_a_frame() -> None:
    h = manual()
    h.send({"type": "response.create"})
    h.wait_for("response.done")
    h.quiet(0.3)
    assert rms(h.heard[-1]) > 0
    response_id = h.of("response.created")[0]["response"]["id"]
    start = len(h.events)
    h.send({"type": "output_audio_buffer.clear", "event_id": "clr"})
    assert h.clears == 1 and not h.queue
    assert h.types(start) == ["output_audio_buffer.cleared", "conversation.item.truncated"]
    assert h.events[start]["response_id"] == response_id
    truncated = h.events[start + 1]
    h.step()
    assert rms(h.heard[-1]) == 0
    h.quiet(3.0)
    assert "output_audio_buffer.stopped" not in h.types()
    played = h.played[response_id] * 1000 // 48000
    assert abs(truncated["audio_end_ms"] - played) <= 20


def test_max_output_tokens_truncates_the_response() -> None:
    h = manual()
    h.send({"type": "response.create", "response": {"max_output_tokens": 30}})
    h.wait_for("output_audio_buffer.stopped")
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert done["max_output_tokens"] == 30
    assert 0 < done["usage"]["output_tokens"] <= 30
    transcript = done["output"][0]["content"][0]["transcript"]
    assert transcript and FIRST_REPLY.startswith(transcript) and transcript != FIRST_REPLY
    assert done["output"][0]["status"] == "incomplete"


def test_usage_counts_text_audio_and_context() -> None:
    h = manual()
    h.send({"type": "session.update", "session": {"type": "realtime", "instructions": "x" * 40}})  # 10 tokens
    h.send({"type": "conversation.item.create", "item": user_text("y" * 80)})  # 20 tokens
    h.send({"type": "response.create"})
    h.wait_for("output_audio_buffer.stopped")
    usage = h.of("response.done")[0]["response"]["usage"]
    assert usage["input_tokens"] == 30 and usage["input_token_details"]["text_tokens"] == 30
    heard_seconds = h.played[h.of("response.created")[0]["response"]["id"]] / 48000
    assert usage["output_token_details"]["text_tokens"] == 13  # 52 characters / 4
    assert usage["output_token_details"]["audio_tokens"] == round(20 * heard_seconds)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_token_details"]["cached_tokens"] == 0  # first response: nothing to reuse


def test_out_of_band_input_bounds_the_cost_and_repeats_are_cached() -> None:
    h = manual()
    for n in range(30):
        h.send({"type": "conversation.item.create", "item": user_text(f"meeting line {n} " + "z" * 200)})
    window = [user_text("only this " + "w" * 400)]  # 103 tokens
    usages = []
    for _ in range(2):
        h.send({"type": "response.create", "response": {"conversation": "none", "instructions": "", "input": window}})
        h.wait_for("response.done", after=len(h.events))
        usages.append(h.of("response.done")[-1]["response"]["usage"])
    first, second = usages
    assert first["input_tokens"] == second["input_tokens"] == 103  # not the 30 conversation items
    assert first["input_token_details"]["cached_tokens"] == 0
    assert second["input_token_details"]["cached_tokens"] == 64  # whole 64-token blocks of the repeated prefix
    in_band = h.send({"type": "response.create"})
    assert in_band[0]["type"] == "response.created"
    h.wait_for("response.done", after=len(h.events) - 1)
    assert h.of("response.done")[-1]["response"]["usage"]["input_tokens"] > 30 * 50  # the whole conversation


def test_item_reference_input_and_unknown_reference() -> None:
    h = manual()
    item_id = h.send({"type": "conversation.item.create", "item": user_text("a" * 40)})[0]["item"]["id"]
    params = {"conversation": "none", "instructions": "", "input": [{"type": "item_reference", "id": item_id}]}
    h.send({"type": "response.create", "response": params})
    h.wait_for("response.done")
    assert h.of("response.done")[0]["response"]["usage"]["input_tokens"] == 10
    bad = {"conversation": "none", "input": [{"type": "item_reference", "id": "item_missing"}]}
    [error] = h.send({"type": "response.create", "response": bad})
    assert (error["error"]["code"], error["error"]["param"]) == ("invalid_value", "response.input[0].id")
    [error] = h.send({"type": "response.create", "response": {"modalities": ["text"]}})
    assert (error["error"]["code"], error["error"]["param"]) == ("unknown_parameter", "response.modalities")
    [error] = h.send({"type": "response.create", "response": {"conversation": "other"}})
    assert error["error"]["param"] == "response.conversation"
    assert len(h.of("response.created")) == 1  # rejected requests created nothing


def test_coach_style_interrupt_of_an_out_of_band_hint() -> None:
    """response.cancel then output_audio_buffer.clear (design.md §4): no truncation, nothing in the conversation."""
    h = manual()
    params = {"conversation": "none", "input": [user_text("Good question.")], "max_output_tokens": 200}
    h.send({"type": "response.create", "response": params})
    h.wait_for("output_audio_buffer.started")
    response_id = h.of("response.created")[0]["response"]["id"]
    start = len(h.events)
    h.send({"type": "response.cancel", "response_id": response_id})
    h.send({"type": "output_audio_buffer.clear"})
    assert h.types(start)[-2:] == ["rate_limits.updated", "output_audio_buffer.cleared"]
    assert h.events[-1]["response_id"] == response_id
    assert h.of("response.done")[0]["response"]["status"] == "cancelled"
    assert "conversation.item.truncated" not in h.types() and len(h.session.conversation) == 0
    h.step()
    assert rms(h.heard[-1]) == 0
