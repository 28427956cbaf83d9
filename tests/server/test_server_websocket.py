"""The local server's Realtime WebSocket (``GET /v1/realtime?model=…``), over a real aiohttp client on 127.0.0.1.

Refusals follow realtime-protocol.md §8: upgrade, one ``error`` event, close 3000 (auth) or 4000 (request).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
from pydantic import ValidationError
from tests.conformance import server_event_adapter
from tests.server.conftest import API_KEY, SCENARIO
from tests.server.helpers import collapse
from tests.server.test_server_webrtc import LISTEN, ephemeral_key, until

from voicecoach.audio.frames import Pcm, resample, rms
from voicecoach.server import RealtimeServer, ServerConfig, synth_speech
from voicecoach.server.websocket import WebSocketCall

HINT = {"type": "response.create", "response": {"conversation": "none", "metadata": {"purpose": "hint"}}}


def ws_url(server: RealtimeServer, query: str = "?model=gpt-realtime") -> str:
    return server.base_url.replace("http://", "ws://", 1) + "/realtime" + query


def bearer(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def pcm24_b64(pcm48: Pcm) -> str:
    return base64.b64encode(resample(pcm48, 48000, 24000).astype("<i2").tobytes()).decode()


class Client:
    """A Realtime WebSocket client for tests: every event received, in order, and the frames that were not."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.arrival: list[float] = []  # monotonic time each event arrived
        self.other: list[aiohttp.WSMessage] = []  # pongs, close frames
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(msg.data))
                self.arrival.append(time.monotonic())
            else:
                self.other.append(msg)
            self._arrived.set()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))

    async def wait_for(self, kind: str, *, after: int = 0, seconds: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(seconds):
            while (found := next((e for e in self.events[after:] if e["type"] == kind), None)) is None:
                self._arrived.clear()
                await self._arrived.wait()
        return found

    async def closed(self, seconds: float = 5.0) -> None:
        async with asyncio.timeout(seconds):
            await asyncio.shield(self._reader)

    def types(self, after: int = 0) -> list[str]:
        return [e["type"] for e in self.events[after:]]

    def of(self, kind: str, after: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.events[after:] if e["type"] == kind]

    async def stop(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.ws.close()


@pytest.fixture
async def connect(http: aiohttp.ClientSession) -> AsyncIterator[Any]:
    clients: list[Client] = []

    async def open_client(url: str, **kwargs: Any) -> Client:
        async with asyncio.timeout(10):
            ws = await http.ws_connect(url, autoping=False, **kwargs)
        client = Client(ws)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.stop()


async def speak(client: Client, pcm48: Pcm, *, tail_seconds: float = 0.6) -> None:
    """Append speech then silence as 20 ms ``input_audio_buffer.append`` events (24 kHz PCM16, base64)."""
    audio = np.concatenate([pcm48, np.zeros(int(tail_seconds * 48000), dtype=np.int16)])
    for start in range(0, audio.size, 960):
        await client.send({"type": "input_audio_buffer.append", "audio": pcm24_b64(audio[start : start + 960])})


def assert_conforms(events: list[dict[str, Any]]) -> None:
    adapter = server_event_adapter()
    failures = []
    for event in events:
        try:
            adapter.validate_python(event, strict=True)
        except ValidationError as exc:
            failures.append(f"{event['type']}: {exc.errors()[0]}")
    assert not failures, failures[:5]
    assert not [e for e in events if e["type"].startswith("output_audio_buffer.")]


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")


# --- connecting ---------------------------------------------------------------------------------------------


async def test_upgrade_then_session_created_and_updated(server: RealtimeServer, connect: Any) -> None:
    client = await connect(ws_url(server, "?model=gpt-realtime-1.5"), headers=bearer(), protocols=("realtime",))
    assert client.ws.protocol == "realtime"  # a browser's handshake needs it selected
    created = await client.wait_for("session.created")
    assert client.events[0] is created
    assert created["session"]["model"] == "gpt-realtime-1.5"
    assert created["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    await client.send(LISTEN)
    updated = await client.wait_for("session.updated")
    assert updated["session"]["audio"]["input"]["turn_detection"]["create_response"] is False

    await client.send({"type": "output_audio_buffer.clear", "event_id": "evt_clear"})
    error = (await client.wait_for("error"))["error"]
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "evt_clear")
    assert "'output_audio_buffer.clear'" not in error["message"].split("Supported values are:")[1]
    mark = len(client.events)
    wrong_rate = {"format": {"type": "audio/pcm", "rate": 16000}}
    await client.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": wrong_rate}}})
    rate_error = (await client.wait_for("error", after=mark))["error"]
    assert (rate_error["code"], rate_error["param"]) == ("integer_below_min_value", "session.audio.input.format.rate")
    [call] = server.calls
    assert isinstance(call, WebSocketCall) and call.transport == "websocket"
    assert [e["type"] for e in call.events_sent] == client.types()
    assert_conforms(client.events)


@pytest.mark.parametrize(
    ("headers", "code", "message"),
    [
        ({}, None, "Missing bearer or basic authentication in header"),
        (bearer("sk-wrong-0123456789abcdef"), "invalid_api_key", "Incorrect API key provided: sk-"),
        (bearer("ek_00000000000000000000000000000000"), "invalid_api_key", "Invalid or expired ephemeral key"),
    ],
    ids=["missing", "wrong", "unknown-ephemeral"],
)
async def test_a_refused_key_gets_an_error_event_then_close_3000(
    server: RealtimeServer, connect: Any, headers: dict[str, str], code: str | None, message: str
) -> None:
    client = await connect(ws_url(server), headers=headers)  # the upgrade itself succeeds, as on OpenAI
    await client.closed()
    [event] = client.events
    assert event["type"] == "error"
    assert event["error"]["code"] == code and event["error"]["message"].startswith(message)
    assert event["error"]["type"] == "invalid_request_error"
    assert client.ws.close_code == 3000
    close = client.other[-1]
    assert close.type == aiohttp.WSMsgType.CLOSE
    assert close.extra == ("invalid_request_error.invalid_api_key" if code else "invalid_request_error")
    assert "0123456789abcdef" not in json.dumps(event)  # a key is quoted masked, never whole
    assert server.calls == []  # no session was created
    assert_conforms(client.events)


async def test_ephemeral_and_subprotocol_keys_are_accepted(server: RealtimeServer, connect: Any) -> None:
    key = await ephemeral_key(server.base_url)
    client = await connect(ws_url(server, ""), headers=bearer(key))  # the token carries the model
    created = await client.wait_for("session.created")
    assert created["session"]["model"] == "gpt-realtime"
    browser = await connect(ws_url(server), protocols=("realtime", f"openai-insecure-api-key.{key}"))
    await browser.wait_for("session.created")
    assert browser.ws.protocol == "realtime"
    assert len(server.calls) == 2


@pytest.mark.parametrize(
    ("query", "headers", "code"),
    [
        ("?model=gpt-realtime", {"OpenAI-Beta": "realtime=v1"}, "beta_api_shape_disabled"),
        ("?model=gpt-nope", {}, "invalid_model"),
        ("?model=", {}, "missing_model"),
        ("", {}, "missing_model"),
    ],
    ids=["beta-header", "unknown-model", "empty-model", "no-model"],
)
async def test_request_errors_close_4000(
    server: RealtimeServer, connect: Any, query: str, headers: dict[str, str], code: str
) -> None:
    client = await connect(ws_url(server, query), headers={**bearer(), **headers})
    await client.closed()
    [event] = client.events
    assert event["error"]["code"] == code
    if code == "invalid_model":
        assert event["error"]["message"].startswith('Model "gpt-nope" is not supported in realtime mode.')
    assert client.ws.close_code == 4000
    assert client.other[-1].extra == f"invalid_request_error.{code}"
    assert server.calls == []


async def test_plain_get_without_upgrade_is_a_400(server: RealtimeServer, http: aiohttp.ClientSession) -> None:
    async with asyncio.timeout(10), http.get(f"{server.base_url}/realtime?model=gpt-realtime") as resp:
        assert resp.status == 400
        assert "WebSocket upgrade" in (await resp.json())["error"]["message"]


# --- audio in, transcripts and hints out ----------------------------------------------------------------------


async def test_appended_audio_is_transcribed_from_the_scenario(server: RealtimeServer, connect: Any) -> None:
    client = await connect(ws_url(server), headers=bearer())
    await client.send(LISTEN)
    await client.wait_for("session.updated")
    await speak(client, synth_speech("hello there friend"))
    completed = await client.wait_for("conversation.item.input_audio_transcription.completed")
    assert completed["transcript"] == SCENARIO.utterances[0]
    assert collapse(client.types())[2:8] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.input_audio_transcription.delta",
    ]
    started = client.of("input_audio_buffer.speech_started")[0]
    stopped = client.of("input_audio_buffer.speech_stopped")[0]
    assert 1000 <= stopped["audio_end_ms"] - started["audio_start_ms"] <= 2500  # ~1.2 s of speech + padding
    assert "response.created" not in client.types()
    call = server.calls[0]
    assert isinstance(call, WebSocketCall)
    assert rms(call.received_audio) > 0.01  # the recording holds the decoded appends
    assert call.events_received[1]["audio"].endswith("base64 characters>")  # appends are kept without audio
    assert_conforms(client.events)


async def test_a_hint_streams_as_audio_deltas_faster_than_real_time(server: RealtimeServer, connect: Any) -> None:
    client = await connect(ws_url(server), headers=bearer())
    await client.send(LISTEN)
    await client.wait_for("session.updated")
    start = len(client.events)
    await client.send(HINT)
    await client.wait_for("rate_limits.updated", after=start, seconds=20)
    events = client.events[start:]
    types = [e["type"] for e in events]
    assert types[:3] == ["response.created", "response.output_item.added", "response.content_part.added"]
    middle = collapse(types[3:-6])
    # Each share of the transcript comes with its share of the audio, word after word.
    assert set(middle) == {"response.output_audio_transcript.delta", "response.output_audio.delta"}
    assert middle[:2] == ["response.output_audio_transcript.delta", "response.output_audio.delta"]
    assert len(middle) >= 6
    assert types[-6:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    assert len(deltas) >= 5
    assert all(len(base64.b64decode(e["delta"])) <= 24000 * 2 * 200 // 1000 for e in deltas)  # <= 200 ms each
    done = next(e for e in events if e["type"] == "response.done")
    assert {e["response_id"] for e in deltas} == {done["response"]["id"]}
    assert done["response"]["metadata"] == {"purpose": "hint"}
    transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
    assert transcript == SCENARIO.responses[0]

    pcm = np.frombuffer(audio_of(events), dtype="<i2")
    audio_seconds = pcm.size / 24000
    first = client.arrival[start + events.index(deltas[0])]
    last = client.arrival[start + events.index(deltas[-1])]
    assert audio_seconds > 1.0 and rms(pcm.astype(np.int16)) > 0.01  # a voice, not silence
    # Generated 4x faster than real time: all of it arrived in well under its own duration.
    assert last - first < audio_seconds / 2, (last - first, audio_seconds)
    assert_conforms(client.events)


async def test_cancel_stops_the_deltas_at_once_and_truncate_is_checked(server: RealtimeServer, connect: Any) -> None:
    client = await connect(ws_url(server), headers=bearer())
    await client.send(LISTEN)
    await client.wait_for("session.updated")
    start = len(client.events)
    await client.send(HINT)
    first = await client.wait_for("response.output_audio.delta", after=start, seconds=20)
    await client.send({"type": "response.cancel", "response_id": first["response_id"]})
    done = await client.wait_for("response.done", after=start)
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    at_done = client.events.index(done)
    await asyncio.sleep(0.5)  # more than a word's worth of generation at 4x: deltas would have kept coming
    assert not client.of("response.output_audio.delta", after=at_done)
    assert not client.of("response.output_audio_transcript.delta", after=at_done)

    # In-band audio: truncation is the client's job on WebSocket; it is validated against what was generated.
    mark = len(client.events)
    await client.send({"type": "response.create"})
    done = await client.wait_for("response.done", after=mark, seconds=20)
    item_id = done["response"]["output"][0]["id"]
    generated_ms = len(audio_of(client.events[mark:])) // 2 * 1000 // 24000
    mark = len(client.events)
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": generated_ms + 500,
        }
    )
    assert (await client.wait_for("error", after=mark))["error"]["param"] == "audio_end_ms"
    await client.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 300}
    )
    truncated = await client.wait_for("conversation.item.truncated", after=mark)
    assert truncated["audio_end_ms"] == 300
    assert_conforms(client.events)


async def test_session_expiry_sends_the_error_then_closes() -> None:
    async with RealtimeServer(ServerConfig(voice="synth", session_max_seconds=1.0)) as server:
        async with aiohttp.ClientSession() as http, asyncio.timeout(10):
            ws = await http.ws_connect(ws_url(server), headers=bearer("sk-any"))
            client = Client(ws)
            await client.closed()
            assert client.types() == ["session.created", "error"]
            assert client.events[1]["error"]["code"] == "session_expired"
            assert ws.close_code == 1000
            assert server.calls[0].close_reason == "session_expired"


# --- --transport ---------------------------------------------------------------------------------------------


async def test_transport_websocket_refuses_webrtc_and_webrtc_refuses_websocket(offer: str) -> None:
    async with RealtimeServer(ServerConfig(transport="websocket")) as ws_only, aiohttp.ClientSession() as http:
        async with asyncio.timeout(10):
            headers = {**bearer("sk-any"), "Content-Type": "application/sdp"}
            async with http.post(f"{ws_only.base_url}/realtime/calls", data=offer, headers=headers) as resp:
                assert resp.status == 404
                error = (await resp.json())["error"]
                assert error["code"] == "transport_not_served" and "--transport" in error["message"]
            ws = await http.ws_connect(ws_url(ws_only), headers=bearer("sk-any"))
            assert (await ws.receive_json())["type"] == "session.created"
            await ws.close()
            async with http.post(
                f"{ws_only.base_url}/realtime/client_secrets",
                json={"session": {"type": "realtime"}},
                headers=bearer("sk-any"),
            ) as resp:
                assert resp.status == 200  # ephemeral keys are still minted for the WebSocket
    async with RealtimeServer(ServerConfig(transport="webrtc")) as rtc_only, aiohttp.ClientSession() as http:
        async with asyncio.timeout(10):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url(rtc_only), headers=bearer("sk-any"))
            assert refused.value.status == 404
            assert rtc_only.calls == []


# --- faults --------------------------------------------------------------------------------------------------


async def test_drop_closes_the_socket_without_a_close_frame(server: RealtimeServer, connect: Any) -> None:
    client = await connect(ws_url(server), headers=bearer())
    await client.wait_for("session.created")
    call = await server.wait_for_call()
    assert isinstance(call, WebSocketCall)
    assert server.faults.drop(call)
    await client.closed()
    assert client.ws.close_code == 1006  # abnormal: no close frame came
    assert not [m for m in client.other if m.type == aiohttp.WSMsgType.CLOSE]
    await until(lambda: call.closed)
    assert server.faults.injected["drop"] == 1


async def test_kill_peer_on_a_websocket_drops_it(server: RealtimeServer, connect: Any) -> None:
    client = await connect(ws_url(server), headers=bearer())
    await client.wait_for("session.created")
    await server.faults.kill_peer(server.calls[0])
    await client.closed()
    assert client.ws.close_code == 1006


async def test_freeze_stops_events_and_pongs_until_thaw(server: RealtimeServer, connect: Any) -> None:
    client = await connect(ws_url(server), headers=bearer())
    await client.wait_for("session.created")
    call = server.calls[0]
    assert isinstance(call, WebSocketCall)
    await client.ws.ping(b"before")
    async with asyncio.timeout(5):
        await until(lambda: any(m.type == aiohttp.WSMsgType.PONG for m in client.other))
    assert client.other[0].data == b"before"  # the server answers pings itself (autoping is off)

    server.faults.freeze(call)
    assert call.frozen
    frozen_at = len(client.events)
    await client.ws.ping(b"frozen")
    await client.send(LISTEN)
    await asyncio.sleep(1.0)
    assert len(client.events) == frozen_at  # no session.updated
    assert [m.data for m in client.other if m.type == aiohttp.WSMsgType.PONG] == [b"before"]  # no pong

    server.faults.thaw(call)
    await client.wait_for("session.updated", after=frozen_at)
    await until(lambda: [m.data for m in client.other if m.type == aiohttp.WSMsgType.PONG] == [b"before", b"frozen"])


async def test_http_faults_on_the_upgrade(server: RealtimeServer, connect: Any, http: aiohttp.ClientSession) -> None:
    server.faults.fail("realtime", status=503, times=1)
    server.faults.fail("realtime", status=401, from_request=2, times=1)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with asyncio.timeout(10):
            await http.ws_connect(ws_url(server), headers=bearer())
    assert refused.value.status == 503
    client = await connect(ws_url(server), headers=bearer())
    await client.closed()
    assert client.events[0]["error"]["code"] == "invalid_api_key" and client.ws.close_code == 3000
    third = await connect(ws_url(server), headers=bearer())
    await third.wait_for("session.created")


def test_the_serve_flag_reaches_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    from voicecoach.cli import main
    from voicecoach.cli_parser import build_parser
    from voicecoach.server import serve_config

    parser = build_parser()
    assert parser.parse_args(["serve"]).transport == "both"
    args = parser.parse_args(["serve", "--transport", "websocket"])
    config = serve_config(
        host="127.0.0.1",
        port=0,
        scenario_path=None,
        session_max_seconds=60.0,
        require_keys=None,
        keys_file=None,
        transport=args.transport,
    )
    assert (config.serves("websocket"), config.serves("webrtc")) == (True, False)
    assert main(["serve", "--transport", "udp"]) == 2
    assert "--transport" in capsys.readouterr().err
