"""The sans-I/O session core: session configuration, client errors, conversation items, manual turns, expiry."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from tests.server.helpers import Harness

from voicecoach.audio.frames import resample
from voicecoach.server.session import SessionOptions
from voicecoach.server.voice import synth_speech

REALTIME = {"type": "realtime"}


def test_session_created_is_first_with_the_default_effective_session() -> None:
    h = Harness()
    assert h.types() == ["session.created"]
    session = h.events[0]["session"]
    assert session["id"] == "sess_test"
    assert session["expires_at"] == 1_700_000_000 + 3600
    assert session["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }
    assert session["audio"]["input"]["transcription"] is None
    assert session["audio"]["output"]["voice"] == "alloy"
    assert h.events[0]["event_id"].startswith("event_") and len(h.events[0]["event_id"]) == 27


def test_session_update_merges_present_fields_and_replies_with_the_full_config() -> None:
    h = Harness()
    [updated] = h.send(
        {
            "type": "session.update",
            "event_id": "evt_1",
            "session": {
                "type": "realtime",
                "instructions": "Be brief.",
                "audio": {
                    "input": {
                        "transcription": {"model": "gpt-4o-mini-transcribe"},
                        "turn_detection": {"type": "server_vad", "create_response": False, "silence_duration_ms": 500},
                    },
                    "output": {"voice": "marin"},
                },
            },
        }
    )
    assert updated["type"] == "session.updated"
    session = updated["session"]
    assert session["instructions"] == "Be brief."
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "marin",
        "speed": 1.0,
    }
    td = session["audio"]["input"]["turn_detection"]
    assert td["create_response"] is False and td["silence_duration_ms"] == 500 and td["threshold"] == 0.5
    assert session["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}  # untouched
    assert session["model"] == "gpt-realtime" and session["id"] == "sess_test"


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"instructions": "x"}, "missing_required_parameter", "session.type"),
        ({"type": "realtime", "modalities": ["audio"]}, "unknown_parameter", "session.modalities"),
        ({"type": "realtime", "turn_detection": None}, "unknown_parameter", "session.turn_detection"),
        ({"type": "realtime", "audio": {"input": {"bogus": 1}}}, "unknown_parameter", "session.audio.input.bogus"),
        ({"type": "session"}, "invalid_value", "session.type"),
        (
            {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "loud_vad"}}}},
            "invalid_value",
            "session.audio.input.turn_detection.type",
        ),
        (
            {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
            "integer_below_min_value",
            "session.audio.input.format.rate",
        ),
        (
            {"type": "realtime", "audio": {"output": {"speed": 3}}},
            "decimal_above_max_value",
            "session.audio.output.speed",
        ),
        ({"type": "realtime", "output_modalities": ["audio", "text"]}, "invalid_value", "session.output_modalities"),
        ({"type": "realtime", "instructions": 5}, "invalid_type", "session.instructions"),
        ({"type": "realtime", "max_output_tokens": 0}, "integer_below_min_value", "session.max_output_tokens"),
        ({"type": "realtime", "temperature": 0.7}, "unknown_parameter", "session.temperature"),
    ],
)
def test_session_update_errors(session: dict[str, Any], code: str, param: str) -> None:
    h = Harness()
    [error] = h.send({"type": "session.update", "event_id": "evt_bad", "session": session})
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert (error["error"]["code"], error["error"]["param"]) == (code, param)
    assert error["error"]["event_id"] == "evt_bad"


def test_messages_follow_the_real_servers_patterns() -> None:
    h = Harness()
    h.send({"type": "session.update", "session": {"instructions": "x"}})
    h.send({"type": "session.update", "session": {"type": "realtime", "modalities": ["audio"]}})
    h.send({"type": "session.update", "session": {"type": "session"}})
    h.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"format": {"rate": 8000}}}}})
    messages = [e["message"] for e in h.errors()]
    assert messages == [
        "Missing required parameter: 'session.type'.",
        "Unknown parameter: 'session.modalities'.",
        "Invalid value: 'session'. Supported values are: 'realtime' and 'transcription'.",
        "Invalid 'session.audio.input.format.rate': integer below minimum value. "
        "Expected a value >= 24000, but got 8000 instead.",
    ]
    assert all(e["event_id"] is None for e in h.errors())


def test_a_rejected_update_is_discarded_whole() -> None:
    h = Harness()
    h.send({"type": "session.update", "session": {"type": "realtime", "instructions": "new", "bogus": True}})
    [updated] = h.send({"type": "session.update", "session": REALTIME})
    assert updated["session"]["instructions"] != "new"


@pytest.mark.parametrize(
    ("text", "code", "param", "message_start"),
    [
        ("{not json", "invalid_json", None, "Invalid event: failed to parse JSON value."),
        ('{"event_id": "e1"}', "invalid_event", None, "The 'type' field is missing."),
        ('{"type": "nope"}', "invalid_value", "type", "Invalid value: 'nope'. Supported values are: 'session.update'"),
        ('{"type": "response.cancel", "bogus": 1}', "unknown_parameter", "bogus", "Unknown parameter: 'bogus'."),
        ('{"type": "conversation.item.retrieve"}', "missing_required_parameter", "item_id", "Missing required"),
        ('{"type": "session.update"}', "missing_required_parameter", "session", "Missing required"),
        ('{"type": "input_audio_buffer.append", "audio": "!!"}', "invalid_value", "audio", "Invalid 'audio'"),
    ],
)
def test_event_level_errors_never_close_the_session(
    text: str, code: str, param: str | None, message_start: str
) -> None:
    h = Harness()
    [error] = h.send(text)
    assert (error["error"]["code"], error["error"]["param"]) == (code, param)
    assert error["error"]["message"].startswith(message_start)
    assert h.closed is None
    assert h.send({"type": "session.update", "session": REALTIME})[0]["type"] == "session.updated"


def test_unknown_type_lists_supported_values_and_echoes_the_event_id() -> None:
    h = Harness()
    [error] = h.send({"type": "response.audio.delta", "event_id": "evt_9"})
    assert error["error"]["event_id"] == "evt_9"
    assert error["error"]["message"].endswith("'response.create', and 'response.cancel'.")
    assert "'output_audio_buffer.clear'" in error["error"]["message"]


def test_conversation_item_create_positions_and_errors() -> None:
    h = Harness()

    def create(text: str, **extra: Any) -> list[dict[str, Any]]:
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        return h.send({"type": "conversation.item.create", "item": item, **extra})

    added, done = create("first")
    assert (added["type"], done["type"]) == ("conversation.item.added", "conversation.item.done")
    first = added["item"]
    assert first == {
        "id": first["id"],
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": "first"}],
    }
    assert added["previous_item_id"] is None
    second = create("second")[0]
    assert second["previous_item_id"] == first["id"]
    root = create("at root", previous_item_id="root")[0]
    assert root["previous_item_id"] is None
    after = create("after first", previous_item_id=first["id"])[0]
    assert after["previous_item_id"] == first["id"]
    order = [i.transcript() for i in h.session.conversation]
    assert order == ["at root", "first", "after first", "second"]
    [error] = create("x", previous_item_id="item_missing")
    assert error["error"]["code"] == "item_create_invalid_previous_item_id"
    [error] = h.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user"}})
    assert error["error"]["param"] == "item.content"
    bad = {"type": "message", "role": "user", "content": [{"type": "text", "text": "beta"}]}
    [error] = h.send({"type": "conversation.item.create", "item": bad})
    assert (error["error"]["code"], error["error"]["param"]) == ("invalid_value", "item.content[0].type")
    audio = {"type": "message", "role": "assistant", "content": [{"type": "output_audio", "transcript": "hi"}]}
    [error] = h.send({"type": "conversation.item.create", "item": audio})
    assert (error["error"]["code"], error["error"]["param"]) == ("missing_required_parameter", "item.content[0].text")


def test_retrieve_delete_and_their_errors() -> None:
    h = Harness()
    pcm = synth_speech("hello there")
    b64 = base64.b64encode(resample(pcm, 48000, 24000).astype("<i2").tobytes()).decode()
    item = {"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": b64}]}
    added = h.send({"type": "conversation.item.create", "item": item})[0]
    assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]  # no inline audio in events
    item_id = added["item"]["id"]
    [retrieved] = h.send({"type": "conversation.item.retrieve", "item_id": item_id})
    assert retrieved["type"] == "conversation.item.retrieved"
    audio = np.frombuffer(base64.b64decode(retrieved["item"]["content"][0]["audio"]), dtype="<i2")
    assert abs(audio.size - pcm.size // 2) < 100  # 24 kHz round trip of the same duration
    [deleted] = h.send({"type": "conversation.item.delete", "item_id": item_id})
    assert deleted == {"type": "conversation.item.deleted", "event_id": deleted["event_id"], "item_id": item_id}
    [error] = h.send({"type": "conversation.item.retrieve", "item_id": item_id})
    assert error["error"]["code"] == "item_retrieve_invalid_item_id"
    [error] = h.send({"type": "conversation.item.delete", "item_id": item_id})
    assert error["error"]["code"] == "item_delete_invalid_item_id"
    assert error["error"]["message"] == f"Error deleting item: the item with id '{item_id}' does not exist."


def test_truncate_assistant_audio_and_its_errors() -> None:
    h = Harness()
    h.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}})
    h.send({"type": "response.create"})
    done = h.wait_for("response.done")
    item_id = done["response"]["output"][0]["id"]
    h.wait_for("output_audio_buffer.stopped")
    item = h.session.conversation.get(item_id)
    assert item is not None
    length = item.audio_ms
    user = h.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        }
    )[0]["item"]["id"]
    cases = [
        ({"item_id": "item_nope", "audio_end_ms": 10}, "item_truncate_invalid_item_id"),
        ({"item_id": user, "audio_end_ms": 10}, "invalid_value"),
        ({"item_id": item_id, "audio_end_ms": length + 500}, "invalid_value"),
    ]
    for fields, code in cases:
        [error] = h.send({"type": "conversation.item.truncate", "content_index": 0, **fields})
        assert error["error"]["code"] == code
    [truncated] = h.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 600}
    )
    assert truncated == {
        "type": "conversation.item.truncated",
        "event_id": truncated["event_id"],
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": 600,
    }
    assert item.audio_ms == 600
    transcript = item.content[0]["transcript"]
    assert transcript and "Start with the numbers: revenue grew twelve percent.".startswith(transcript)
    assert len(transcript) < len("Start with the numbers: revenue grew twelve percent.")


def test_manual_turns_commit_and_clear() -> None:
    h = Harness()
    h.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}})
    [error] = h.send({"type": "input_audio_buffer.commit", "event_id": "c1"})
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"
    assert error["error"]["message"] == (
        "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
        "but buffer only has 0.00ms of audio."
    )
    h.feed(synth_speech("hello there"))
    assert "input_audio_buffer.speech_started" not in h.types()  # no VAD in manual mode
    committed, added, done = h.send({"type": "input_audio_buffer.commit"})
    assert committed["type"] == "input_audio_buffer.committed" and committed["previous_item_id"] is None
    assert added["item"]["id"] == committed["item_id"] == done["item"]["id"]
    assert added["item"]["role"] == "user"
    assert "response.created" not in h.types()  # a commit never creates a response
    h.feed(synth_speech("again"))
    [cleared] = h.send({"type": "input_audio_buffer.clear"})
    assert cleared["type"] == "input_audio_buffer.cleared"
    [error] = h.send({"type": "input_audio_buffer.commit"})
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"


def test_append_feeds_the_same_vad_as_rtp_audio() -> None:
    h = Harness()
    h.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": False}}},
            },
        }
    )
    pcm24 = resample(synth_speech("hello there friend"), 48000, 24000)
    h.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm24.astype("<i2").tobytes()).decode()})
    h.quiet(0.5)
    assert h.types()[2:5] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]


def test_voice_cannot_change_once_the_model_has_spoken() -> None:
    h = Harness()
    voice = {"type": "realtime", "audio": {"output": {"voice": "cedar"}}}
    assert h.send({"type": "session.update", "session": voice})[0]["type"] == "session.updated"
    h.send({"type": "response.create"})
    h.wait_for("response.done")
    [error] = h.send({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "ash"}}}})
    assert error["error"]["code"] == "cannot_update_voice"
    assert error["error"]["message"] == "Cannot update a conversation's voice if assistant audio is present."


def test_session_expiry_sends_session_expired_and_closes() -> None:
    h = Harness(options=SessionOptions(session_max_seconds=120.0))
    h.wait_for("error", limit=121.0, silent_mic=False)
    [error] = h.errors()
    assert error == {
        "type": "invalid_request_error",
        "code": "session_expired",
        "message": "Your session hit the maximum duration of 2 minutes.",
        "param": None,
        "event_id": None,
    }
    assert h.closed == "session_expired"
    assert 120.0 <= h.now < 120.1
    assert h.send({"type": "response.create"}) == []  # nothing after the end
