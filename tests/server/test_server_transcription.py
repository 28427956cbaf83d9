"""Transcription-only sessions (``GET /v1/realtime?intent=transcription``) over a real aiohttp WebSocket on
127.0.0.1: the other side of a call, transcribed from the scenario's ``them_utterances``, never answered.

Facts: next-wave.md §2.1, realtime-protocol.md §4.3 (events, usage), §7.2 (models), §8 (errors).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from openai.types.realtime import ClientSecretCreateResponse
from tests.conformance import client_event_adapter
from tests.server.conftest import API_KEY, Clock
from tests.server.test_server_websocket import Client, assert_conforms, bearer, connect, speak, ws_url

from voicecoach.server import RealtimeServer, Scenario, ServerConfig, synth_speech

__all__ = ["connect"]  # the WebSocket client fixture, shared with test_server_websocket.py

THEM = ["So, tell me about a project you are proud of.", "What was the hardest part?"]
SCENARIO = Scenario(utterances=["Mine, not theirs."], responses=["A hint."], them_utterances=THEM)
MODEL = "gpt-4o-mini-transcribe"


def transcription_update(model: str = MODEL, **input_fields: Any) -> dict[str, Any]:
    audio_input = {
        "format": {"type": "audio/pcm", "rate": 24000},
        "transcription": {"model": model},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
        **input_fields,
    }
    return {"type": "session.update", "session": {"type": "transcription", "audio": {"input": audio_input}}}


@pytest.fixture
async def server(clock: Clock) -> AsyncIterator[RealtimeServer]:
    config = ServerConfig(api_key=API_KEY, voice="synth", session_max_seconds=600.0, scenario=SCENARIO)
    async with RealtimeServer(config, wall_clock=clock) as running:
        yield running


async def transcribing(connect: Any, server: RealtimeServer, model: str = MODEL) -> Client:
    client: Client = await connect(ws_url(server, "?intent=transcription"), headers=bearer())
    await client.wait_for("session.created")
    await client.send(transcription_update(model))
    await client.wait_for("session.updated")
    return client


async def test_intent_transcription_opens_a_transcription_session(server: RealtimeServer, connect: Any) -> None:
    client = await connect(ws_url(server, "?intent=transcription"), headers=bearer())  # no model in the URL
    created = await client.wait_for("session.created")
    assert client.events[0] is created
    session = created["session"]
    assert (session["type"], session["object"]) == ("transcription", "realtime.transcription_session")
    assert session["id"].startswith("sess_") and session["expires_at"] > 0
    assert "model" not in session and "output" not in session["audio"] and "instructions" not in session
    assert session["audio"]["input"]["transcription"] is None  # off until the client names a model

    update = transcription_update()
    client_event_adapter().validate_python(update)  # what the client sends is a valid GA client event
    await client.send(update)
    updated = (await client.wait_for("session.updated"))["session"]
    audio_input = updated["audio"]["input"]
    assert updated["type"] == "transcription" and updated["id"] == session["id"]
    assert audio_input["transcription"]["model"] == MODEL
    assert audio_input["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio_input["turn_detection"]["type"] == "server_vad"
    assert audio_input["turn_detection"]["silence_duration_ms"] == 300
    assert "create_response" not in audio_input["turn_detection"]  # no responses in this session
    assert_conforms(client.events)


async def test_speech_is_committed_and_transcribed_from_them_utterances(server: RealtimeServer, connect: Any) -> None:
    client = await transcribing(connect, server)
    mark = len(client.events)
    await speak(client, synth_speech("hello there friend"))
    first = await client.wait_for("conversation.item.input_audio_transcription.completed", after=mark)
    await speak(client, synth_speech("and another thing"))
    after_first = client.events.index(first) + 1
    second = await client.wait_for("conversation.item.input_audio_transcription.completed", after=after_first)

    types = client.types(mark)
    assert not [t for t in types if t.startswith(("response.", "output_audio_buffer.", "rate_limits."))]
    turn = [t for t in types if not t.endswith(".delta")][:6]
    assert turn == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.completed",
    ]
    for completed, text in ((first, THEM[0]), (second, THEM[1])):
        item_id = completed["item_id"]
        [started] = [e for e in client.of("input_audio_buffer.speech_started") if e["item_id"] == item_id]
        [committed] = [e for e in client.of("input_audio_buffer.committed") if e["item_id"] == item_id]
        assert started and committed
        deltas = [e for e in client.of("conversation.item.input_audio_transcription.delta") if e["item_id"] == item_id]
        assert len(deltas) == len(text.split()) and "".join(d["delta"] for d in deltas) == text
        assert completed["transcript"] == text and completed["content_index"] == 0
        usage = completed["usage"]
        assert usage["type"] == "tokens" and usage["input_token_details"]["audio_tokens"] > 0
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    [done] = [e for e in client.of("conversation.item.done") if e["item"]["id"] == first["item_id"]]
    assert (done["item"]["role"], done["item"]["content"][0]["type"]) == ("user", "input_audio")
    assert_conforms(client.events)


async def test_duration_billed_models_report_seconds_of_committed_audio(server: RealtimeServer, connect: Any) -> None:
    client = await transcribing(connect, server, model="whisper-1")
    await speak(client, synth_speech("hello there friend"))
    completed = await client.wait_for("conversation.item.input_audio_transcription.completed")
    stopped = client.of("input_audio_buffer.speech_stopped")[0]
    started = client.of("input_audio_buffer.speech_started")[0]
    usage = completed["usage"]
    assert usage["type"] == "duration" and set(usage) == {"type", "seconds"}
    assert usage["seconds"] == pytest.approx((stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000, abs=0.02)
    assert_conforms(client.events)


async def test_response_create_is_refused_and_the_session_goes_on(server: RealtimeServer, connect: Any) -> None:
    client = await transcribing(connect, server)
    for kind in ("response.create", "response.cancel", "conversation.item.create"):
        mark = len(client.events)
        await client.send({"type": kind, "event_id": f"evt_{kind}"})
        error = (await client.wait_for("error", after=mark))["error"]
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", f"evt_{kind}")
        assert error["message"].startswith(f"Invalid value: '{kind}'. Supported values are: 'session.update'")
        assert f"'{kind}'" not in error["message"].split("Supported values are:")[1]
    mark = len(client.events)
    await client.send({"type": "input_audio_buffer.clear"})
    await client.wait_for("input_audio_buffer.cleared", after=mark)
    assert not [t for t in client.types() if t.startswith("response.")]
    assert_conforms(client.events)


async def test_a_client_secret_for_a_transcription_session_works_with_intent_transcription(
    server: RealtimeServer, connect: Any, http: aiohttp.ClientSession
) -> None:
    body = {"session": transcription_update("gpt-4o-transcribe")["session"]}
    async with asyncio.timeout(10):
        async with http.post(f"{server.base_url}/realtime/client_secrets", json=body, headers=bearer()) as resp:
            assert resp.status == 200
            minted = await resp.json()
    ClientSecretCreateResponse.model_validate(minted, strict=True)
    assert minted["value"].startswith("ek_") and minted["session"]["type"] == "transcription"

    client = await connect(ws_url(server, "?intent=transcription"), headers=bearer(minted["value"]))
    created = (await client.wait_for("session.created"))["session"]
    assert created["type"] == "transcription"
    assert created["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"  # from the key
    await speak(client, synth_speech("hello there friend"))
    completed = await client.wait_for("conversation.item.input_audio_transcription.completed")
    assert completed["transcript"] == THEM[0]
    assert_conforms(client.events)


async def test_an_unknown_transcription_model_is_an_error(
    server: RealtimeServer, connect: Any, http: aiohttp.ClientSession
) -> None:
    client = await transcribing(connect, server)
    for model in ("gpt-4o-nope-transcribe", "gpt-realtime"):
        mark = len(client.events)
        await client.send({**transcription_update(model), "event_id": "evt_model"})
        error = (await client.wait_for("error", after=mark))["error"]
        assert (error["code"], error["param"], error["event_id"]) == (
            "invalid_value",
            "session.audio.input.transcription.model",
            "evt_model",
        )
        assert f"'{model}'" in error["message"] and "'gpt-4o-mini-transcribe'" in error["message"]
    mark = len(client.events)
    await client.send({"type": "session.update", "session": {"type": "transcription"}})
    kept = (await client.wait_for("session.updated", after=mark))["session"]
    assert kept["audio"]["input"]["transcription"]["model"] == MODEL  # the rejected updates changed nothing
    await client.send({"type": "session.update", "session": {"type": "realtime"}})
    switched = (await client.wait_for("error", after=mark))["error"]
    assert (switched["code"], switched["param"]) == ("invalid_value", "session.type")

    body = {"session": transcription_update("gpt-4o-nope-transcribe")["session"]}
    async with asyncio.timeout(10):
        async with http.post(f"{server.base_url}/realtime/client_secrets", json=body, headers=bearer()) as resp:
            assert resp.status == 400
            http_error = (await resp.json())["error"]
    assert (http_error["code"], http_error["param"]) == ("invalid_value", "session.audio.input.transcription.model")
    assert_conforms(client.events)


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("?intent=transcribe", "invalid_value", "Invalid value: 'transcribe'. Supported values are: 'transcription'"),
        ("?model=gpt-4o-transcribe", "invalid_model", "Model gpt-4o-transcribe is a transcription model"),
    ],
    ids=["bad-intent", "transcription-model-as-session-model"],
)
async def test_a_bad_intent_or_a_transcription_model_in_the_url_is_refused(
    server: RealtimeServer, connect: Any, query: str, code: str, message: str
) -> None:
    client = await connect(ws_url(server, query), headers=bearer())
    await client.closed()
    [event] = client.events
    assert event["error"]["code"] == code and event["error"]["message"].startswith(message)
    assert client.ws.close_code == 4000
    assert server.calls == []
    assert_conforms(client.events)
