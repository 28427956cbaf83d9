"""Every event the server emits, across many scenarios, validates strictly against the openai SDK's models."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError
from tests.conformance import client_event_adapter, server_event_adapter, server_event_types
from tests.server.helpers import Harness

from voicecoach.audio.frames import resample
from voicecoach.server.defaults import default_transcription_session
from voicecoach.server.scenario import Scenario
from voicecoach.server.session import SessionOptions
from voicecoach.server.voice import synth_speech

_WS = SessionOptions(transport="websocket")

# Every type the server can emit; the test fails if a scenario stops producing one (so coverage cannot rot).
EMITTED = {
    "session.created",
    "session.updated",
    "error",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.retrieved",
    "conversation.item.truncated",
    "conversation.item.deleted",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "response.created",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_audio_transcript.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
    "rate_limits.updated",
    "output_audio_buffer.started",
    "output_audio_buffer.stopped",
    "output_audio_buffer.cleared",
}


def _session(h: Harness, **audio_input: Any) -> None:
    h.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": audio_input}}})


def scenario_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    # VAD turns with transcription, an automatic response, then a barge-in while it plays.
    h = Harness()
    _session(h, transcription={"model": "gpt-4o-mini-transcribe", "language": "en"})
    h.feed(synth_speech("hello there friend"))
    h.wait_for("output_audio_buffer.started")
    h.feed(synth_speech("wait a moment"))
    h.wait_for("conversation.item.input_audio_transcription.completed", after=len(h.events) - 1)
    h.wait_for("output_audio_buffer.stopped")
    events += h.events

    # Barge-in before any output.
    h = Harness(options=SessionOptions(response_latency=2.0))
    h.feed(synth_speech("hello there friend"))
    h.wait_for("response.created")
    h.feed(synth_speech("wait"))
    events += h.events

    # Manual turns, items, retrieve with audio, truncate, delete, text and audio responses, cancel, clear.
    h = Harness()
    _session(h, turn_detection=None)
    h.send({"type": "input_audio_buffer.commit"})
    h.feed(synth_speech("one two three"))
    h.send({"type": "input_audio_buffer.commit"})
    h.feed(synth_speech("four"))
    h.send({"type": "input_audio_buffer.clear"})
    pcm24 = resample(synth_speech("hi"), 48000, 24000).astype("<i2").tobytes()
    audio_item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "audio": base64.b64encode(pcm24).decode()}],
    }
    user = h.send({"type": "conversation.item.create", "item": audio_item})[0]["item"]["id"]
    h.send({"type": "conversation.item.retrieve", "item_id": user})
    h.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Be kind."}]},
        }
    )
    h.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "call_1"},
        }
    )
    h.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
        }
    )
    h.send({"type": "response.create", "response": {"output_modalities": ["text"], "metadata": {"k": "v"}}})
    h.wait_for("rate_limits.updated")
    h.send({"type": "response.create"})
    done = h.wait_for("response.done", after=len(h.events) - 1)
    h.wait_for("output_audio_buffer.stopped")
    item_id = done["response"]["output"][0]["id"]
    h.send({"type": "conversation.item.retrieve", "item_id": item_id})
    h.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 300})
    h.send({"type": "conversation.item.delete", "item_id": item_id})
    h.send({"type": "response.create", "response": {"conversation": "none", "max_output_tokens": 20, "input": []}})
    h.wait_for("response.output_audio_transcript.delta", after=len(h.events) - 1)
    h.send({"type": "response.create", "response": {"conversation": "none"}})
    h.wait_for("output_audio_buffer.started", after=len(h.events) - 1)
    h.send({"type": "response.cancel", "response_id": h.of("response.created")[-1]["response"]["id"]})
    h.send({"type": "output_audio_buffer.clear"})
    h.send({"type": "response.cancel"})
    h.send("not json")
    h.send({"type": "bogus"})
    h.send({})
    events += h.events

    # Expiry.
    h = Harness(options=SessionOptions(session_max_seconds=1.0))
    h.quiet(1.1)
    events += h.events
    return events


@pytest.fixture(scope="module")
def emitted() -> list[dict[str, Any]]:
    return scenario_events()


def test_every_emitted_event_validates_strictly(emitted: list[dict[str, Any]]) -> None:
    adapter = server_event_adapter()
    failures = []
    for event in emitted:
        try:
            adapter.validate_python(event, strict=True)
        except ValidationError as exc:
            failures.append(f"{event['type']}: {exc.errors()[0]}")
    assert not failures, "\n".join(failures[:10])


def test_the_oracle_covers_every_emitted_type_and_the_scenarios_cover_them_all(emitted: list[dict[str, Any]]) -> None:
    types = {e["type"] for e in emitted}
    assert types <= server_event_types()
    assert types == EMITTED


def test_wire_shape_details(emitted: list[dict[str, Any]]) -> None:
    for event in emitted:
        assert next(iter(event)) == "type"  # type first, as on the real wire
        assert event["event_id"].startswith("event_")
        expected = 16 if event["type"].startswith("output_audio_buffer.") else 21
        assert len(event["event_id"]) == len("event_") + expected
        for item in [event.get("item"), *(event.get("response") or {}).get("output", [])]:
            if item is not None:
                assert "object" not in item  # GA items carry no object key
    ids = [i for e in emitted for i in (e.get("item_id"), (e.get("response") or {}).get("id")) if i]
    assert all(i.startswith(("item_", "resp_")) and len(i) == 26 for i in ids)


# --- WebSocket sessions: audio as deltas, no output_audio_buffer.* ---------------------------------------------

WEBSOCKET_EMITTED = {
    "session.created",
    "session.updated",
    "error",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.truncated",
    "response.created",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_audio_transcript.delta",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
    "rate_limits.updated",
}


def websocket_events() -> tuple[list[dict[str, Any]], Harness]:
    """A WebSocket session: appended speech transcribed, a hint with audio, a cancelled hint, barge-in, truncate."""
    h = Harness(options=SessionOptions(transport="websocket"))
    _session(h, transcription={"model": "gpt-4o-mini-transcribe"})
    pcm24 = resample(synth_speech("hello there friend"), 48000, 24000).astype("<i2")
    for start in range(0, pcm24.size, 480):
        h.send(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(pcm24[start : start + 480].tobytes()).decode(),
            }
        )
    h.quiet(0.5)  # the turn ends: an automatic in-band response starts
    h.wait_for("response.output_audio.delta")
    h.feed(synth_speech("wait"))  # barge-in: cancelled, nothing cleared (the client truncates)
    h.wait_for("conversation.item.input_audio_transcription.completed", after=len(h.events) - 1)
    done = h.of("response.done")[0]
    h.send(
        {
            "type": "conversation.item.truncate",
            "item_id": done["response"]["output"][0]["id"],
            "content_index": 0,
            "audio_end_ms": 0,
        }
    )
    h.send({"type": "response.create", "response": {"conversation": "none", "metadata": {"hint": "1"}}})
    h.wait_for("rate_limits.updated", after=len(h.events) - 1)
    mark = len(h.events)
    h.send({"type": "response.create", "response": {"conversation": "none"}})
    h.wait_for("response.output_audio.delta", after=mark)
    h.send({"type": "response.cancel", "response_id": h.of("response.created")[-1]["response"]["id"]})
    h.send({"type": "output_audio_buffer.clear"})  # WebRTC/SIP only: an error here
    h.quiet(1.0)
    return h.events, h


def test_websocket_events_validate_strictly_and_carry_the_audio() -> None:
    events, h = websocket_events()
    adapter = server_event_adapter()
    failures = []
    for event in events:
        try:
            adapter.validate_python(event, strict=True)
        except ValidationError as exc:
            failures.append(f"{event['type']}: {exc.errors()[0]}")
    assert not failures, "\n".join(failures[:10])
    assert {e["type"] for e in events} == WEBSOCKET_EMITTED  # no output_audio_buffer.* among them
    assert not h.played and h.clears == 0  # nothing went to a track: the audio is in the deltas
    cancelled = [e["response"] for e in h.of("response.done") if e["response"]["status"] == "cancelled"]
    assert [r["status_details"]["reason"] for r in cancelled] == ["turn_detected", "client_cancelled"]
    [clear_error] = [e["error"] for e in h.of("error")]
    assert (clear_error["code"], clear_error["param"]) == ("invalid_value", "type")
    last_cancel = h.events.index(h.of("response.done")[-1])
    assert not [e for e in h.events[last_cancel:] if e["type"] == "response.output_audio.delta"]


# --- transcription-only sessions (?intent=transcription): transcripts, never a response ------------------------

TRANSCRIPTION_EMITTED = {
    "session.created",
    "session.updated",
    "error",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.retrieved",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
}


def transcription_events() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(server events, client events) of a transcription session: VAD turns, a manual commit, refusals."""
    scenario = Scenario(them_utterances=["So, tell me about it.", "And then?", "Thanks."])
    h = Harness(session=default_transcription_session("sess_test"), scenario=scenario, options=_WS)
    sent: list[dict[str, Any]] = []

    def send(event: dict[str, Any]) -> None:
        sent.append(event)
        h.send(event)

    audio_input = {
        "format": {"type": "audio/pcm", "rate": 24000},
        "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
        "noise_reduction": {"type": "near_field"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 300},
    }
    send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": audio_input}}})
    pcm24 = resample(synth_speech("hello there friend"), 48000, 24000).astype("<i2")
    for start in range(0, pcm24.size, 480):
        send(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(pcm24[start : start + 480].tobytes()).decode(),
            }
        )
    h.quiet(0.5)
    completed = h.wait_for("conversation.item.input_audio_transcription.completed")
    send({"type": "conversation.item.retrieve", "item_id": completed["item_id"]})
    whisper = {"transcription": {"model": "whisper-1"}, "turn_detection": None}
    send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": whisper}}})
    h.feed(synth_speech("one two three"))
    send({"type": "input_audio_buffer.commit"})  # a manual turn, duration-billed
    h.wait_for("conversation.item.input_audio_transcription.completed", after=len(h.events) - 1)
    send({"type": "input_audio_buffer.clear"})
    send({"type": "response.create", "event_id": "evt_refused"})
    send(
        {
            "type": "session.update",
            "session": {"type": "transcription", "audio": {"input": {"transcription": {"model": "nope"}}}},
        }
    )
    h.quiet(0.5)
    return h.events, sent


def test_a_transcription_session_emits_only_transcription_events_and_they_validate_strictly() -> None:
    events, sent = transcription_events()
    adapter = server_event_adapter()
    failures = []
    for event in events:
        try:
            adapter.validate_python(event, strict=True)
        except ValidationError as exc:
            failures.append(f"{event['type']}: {exc.errors()[0]}")
    assert not failures, "\n".join(failures[:10])
    assert {e["type"] for e in events} == TRANSCRIPTION_EMITTED  # no response.*, no rate_limits, no output audio
    assert events[0]["session"]["type"] == "transcription"
    usages = [e["usage"]["type"] for e in events if e["type"].endswith("transcription.completed")]
    assert usages == ["tokens", "duration"]  # gpt-4o-mini-transcribe bills tokens, whisper-1 seconds
    assert [e["error"]["code"] for e in events if e["type"] == "error"] == ["invalid_value", "invalid_value"]
    client = client_event_adapter()
    for event in sent:  # the client side of the session is valid GA client events too
        client.validate_python(event)
