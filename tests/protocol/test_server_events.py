"""Parsing server events: GA names, beta aliases, unknown types and malformed input are data, never a crash."""

from __future__ import annotations

import json

import pytest

from voicecoach.protocol import server_events as se


def parse(obj: object) -> se.ServerEvent:
    return se.parse_server_event(json.dumps(obj))


def test_ga_transcription_delta_with_obfuscation() -> None:
    event = parse(
        {
            "type": "conversation.item.input_audio_transcription.delta",
            "event_id": "event_1",
            "item_id": "item_1",
            "content_index": 0,
            "delta": "Hey",
            "obfuscation": "aLxx0jTEciOGe",
        }
    )
    assert isinstance(event, se.TranscriptionDelta)
    assert (event.item_id, event.delta) == ("item_1", "Hey")


@pytest.mark.parametrize(
    ("beta", "ga_class"),
    [
        ("response.audio_transcript.delta", se.TranscriptDelta),
        ("response.text.delta", se.TranscriptDelta),
    ],
)
def test_beta_aliases_map_to_ga(beta: str, ga_class: type) -> None:
    event = parse({"type": beta, "response_id": "resp_1", "item_id": "item_1", "delta": "hi"})
    assert isinstance(event, ga_class)
    assert event.type.startswith("response.output_")  # type: ignore[union-attr]


def test_beta_item_created_is_item_added_and_content_vocab_normalized() -> None:
    event = parse(
        {
            "type": "conversation.item.created",
            "previous_item_id": None,
            "item": {
                "id": "msg_1",
                "object": "realtime.item",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "audio", "transcript": "hello"}],
            },
        }
    )
    assert isinstance(event, se.ItemAdded)
    assert event.item.content[0].kind == "output_audio"
    assert event.item.content[0].words == "hello"


def test_response_done_usage() -> None:
    event = parse(
        {
            "type": "response.done",
            "response": {
                "id": "resp_1",
                "status": "completed",
                "output": [],
                "usage": {
                    "total_tokens": 320,
                    "input_tokens": 132,
                    "output_tokens": 188,
                    "input_token_details": {"text_tokens": 59, "audio_tokens": 73, "cached_tokens": 64},
                    "output_token_details": {"text_tokens": 41, "audio_tokens": 147},
                },
            },
        }
    )
    assert isinstance(event, se.ResponseDone)
    assert event.response.usage is not None and event.response.usage.output_tokens == 188


def test_error_event_is_data() -> None:
    event = parse(
        {
            "type": "error",
            "event_id": "event_890",
            "error": {
                "type": "invalid_request_error",
                "code": "response_cancel_not_active",
                "message": "Cancellation failed: no active response found",
                "param": None,
                "event_id": None,
            },
        }
    )
    assert isinstance(event, se.ErrorEvent)
    assert event.error.code == "response_cancel_not_active"


def test_unknown_type_is_kept() -> None:
    raw = {"type": "mcp_list_tools.completed", "item_id": "x", "extra": [1, 2]}
    event = parse(raw)
    assert isinstance(event, se.UnknownEvent)
    assert event.raw == raw


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('"just a string"', "not a JSON object"),
        ('{"no_type": 1}', "'type' field is missing"),
        ('{"type": 5}', "'type' field is missing"),
        ('{"type": "response.done"}', "response"),
        ('{"type": "response.done", "response": {"id": 7}}', "response.id"),
        ('{"type": "conversation.item.input_audio_transcription.completed", "item_id": "i"}', "transcript"),
    ],
)
def test_malformed_is_data(text: str, reason: str) -> None:
    event = se.parse_server_event(text)
    assert isinstance(event, se.MalformedEvent)
    assert reason in event.reason


def test_huge_message_is_refused_without_parsing() -> None:
    event = se.parse_server_event('{"type": "x", "pad": "' + "a" * (se.MAX_EVENT_BYTES + 1) + '"}')
    assert isinstance(event, se.MalformedEvent)
    assert "limit" in event.reason


def test_deeply_nested_json_does_not_crash() -> None:
    event = se.parse_server_event("[" * 100_000 + "]" * 100_000)
    assert isinstance(event, se.MalformedEvent)


def test_every_modelled_type_round_trips_its_literal() -> None:
    # The KNOWN_TYPES table is derived from the union; a new member with a typo'd literal would show here.
    assert "output_audio_buffer.started" in se.KNOWN_TYPES
    assert "response.output_audio_transcript.done" in se.KNOWN_TYPES
    assert not (se.KNOWN_TYPES & set(se.BETA_TO_GA))
