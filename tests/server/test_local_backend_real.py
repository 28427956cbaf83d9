"""The local backend for real: the bundled Whisper tiny.en, Silero VAD and espeak-ng in the server, over a real
WebRTC call (and a WebSocket) on 127.0.0.1.

The language model is tests/local/chat_stub.py, a STAND-IN for an OpenAI-compatible server (it streams a fixed
reply, slowly when asked, and records when a client drops the stream): the speech parts are real, the reply's
words are not. Speech in is espeak-ng ``en-us``; the bound on its word error rate is the study's tiny.en figure
for this voice (13.9 %, offline-backend.md §1.3) with room for these sentences: at most 1 word in 5.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from tests.conformance import server_event_adapter
from tests.local.chat_stub import ChatStub, StubConfig
from tests.local.speech import espeak, word_errors
from tests.server.peer import TestPeer
from tests.server.test_server_transcription import transcription_update
from tests.server.test_server_websocket import bearer, connect, speak, ws_url

from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, WIRE_RATE, Pcm, rms, silence
from voicecoach.errors import ConfigError
from voicecoach.local.errors import LocalLlmModelUnknown, LocalLlmUnreachable, LocalModelMissing
from voicecoach.server import Call, RealtimeServer, ServerConfig
from voicecoach.server.local_config import LocalConfig

__all__ = ["connect"]  # the WebSocket client fixture

KEY = "sk-local-test-0123456789"
MODEL = "stub-model"
# Phrased so that tiny.en hears espeak's voice steadily: "that is a good question" alone comes out as "that's it,
# I got question" about two times in three (measured over 20 offsets and noise seeds); "really" fixes that.
SPOKEN = ("thanks for joining everyone", "that is a really good question", "how do we scale the support team")
HINT = ["Start ", "with ", "the ", "pilot. ", "Then ", "ask ", "about ", "the ", "support ", "budget."]
MAX_WER = 0.2


def listening(*, silence_ms: int = 500, prefix_ms: int = 300) -> dict[str, Any]:
    """What voicecoach's client sends: transcribe, turn detection, never answer on its own."""
    turns = {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": prefix_ms,
        "silence_duration_ms": silence_ms,
        "create_response": False,
        "interrupt_response": False,
    }
    audio = {"input": {"transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"}, "turn_detection": turns}}
    return {"type": "session.update", "session": {"type": "realtime", "audio": audio}}


def hint_request(text: str, max_output_tokens: int | str = 300) -> dict[str, Any]:
    return {
        "type": "response.create",
        "response": {
            "conversation": "none",
            "instructions": "You are a discreet coach. One short hint.",
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}],
            "max_output_tokens": max_output_tokens,
            "output_modalities": ["audio"],
        },
    }


def said(text: str, pause: float = 1.2) -> Pcm:
    return np.concatenate([espeak(text, WIRE_RATE), silence(int(pause * WIRE_RATE))])


def voiced_frames(pcm: Pcm) -> list[bool]:
    return [rms(pcm[i : i + WIRE_FRAME_SAMPLES]) > 0.003 for i in range(0, pcm.size - WIRE_FRAME_SAMPLES + 1, 960)]


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend makes the process offline for the model hub (never a download); undone after the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
async def stub() -> AsyncIterator[ChatStub]:
    async with ChatStub(StubConfig(reply=HINT, token_delay_s=0.05, models=[MODEL])) as running:
        yield running


async def local_server(stub: ChatStub, **local: Any) -> RealtimeServer:
    config = ServerConfig(
        api_key=KEY, backend="local", local=LocalConfig(**{"llm_url": stub.url, "llm_model": MODEL, **local})
    )
    server = RealtimeServer(config)
    await server.start()
    return server


@pytest.fixture
async def server(stub: ChatStub) -> AsyncIterator[RealtimeServer]:
    running = await local_server(stub)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def peer(server: RealtimeServer) -> AsyncIterator[TestPeer]:
    client = TestPeer()
    await client.connect(server.base_url, KEY)
    client.send(listening())
    await client.wait_for("session.updated")
    try:
        yield client
    finally:
        await client.close()


async def test_real_speech_is_transcribed_turn_by_turn(peer: TestPeer) -> None:
    peer.say(np.concatenate([silence(WIRE_RATE // 2), *(said(text) for text in SPOKEN)]))
    done: list[dict[str, Any]] = []
    for _ in SPOKEN:
        after = peer.events.index(done[-1]) + 1 if done else 0
        done.append(
            await peer.wait_for("conversation.item.input_audio_transcription.completed", after=after, seconds=30)
        )
    errors = [word_errors(text, event["transcript"]) for text, event in zip(SPOKEN, done, strict=True)]
    wer = sum(e for e, _ in errors) / sum(n for _, n in errors)
    assert wer <= MAX_WER, [e["transcript"] for e in done]
    for event in done:
        deltas = [
            e["delta"] for e in peer.events if e.get("item_id") == event["item_id"] and e["type"].endswith(".delta")
        ]
        assert "".join(deltas) == event["transcript"]  # the deltas add up to the final text, as on the scripted path
        assert event["usage"]["type"] == "tokens" and event["usage"]["input_token_details"]["audio_tokens"] > 0
    assert peer.types().count("input_audio_buffer.committed") == len(SPOKEN)  # no turn split, none merged
    adapter = server_event_adapter()
    for event in peer.events:
        adapter.validate_python(event, strict=True)


async def test_the_sessions_silence_and_padding_shape_the_turns(peer: TestPeer) -> None:
    """A turn's audio is the prefix padding, the speech and the silence that ended it: change the settings and
    the committed turn changes by as much (Silero decides on 32 ms windows, so within a few windows)."""
    speech = espeak("that is a good question", WIRE_RATE)
    lengths = []
    for silence_ms, prefix_ms in ((300, 100), (1200, 500)):
        mark = len(peer.events)
        peer.send(listening(silence_ms=silence_ms, prefix_ms=prefix_ms))
        await peer.wait_for("session.updated", after=mark)
        peer.say(np.concatenate([silence(WIRE_RATE), speech, silence(2 * WIRE_RATE)]))
        stopped = await peer.wait_for("input_audio_buffer.speech_stopped", after=mark, seconds=20)
        started = next(e for e in peer.events[mark:] if e["type"] == "input_audio_buffer.speech_started")
        lengths.append(stopped["audio_end_ms"] - started["audio_start_ms"] - (silence_ms + prefix_ms))
        await peer.wait_for("conversation.item.input_audio_transcription.completed", after=mark, seconds=20)
    # What is left is the voiced part of the same speech both times (espeak's clip has its own silent edges).
    voiced = voiced_frames(speech)
    voiced_ms = (len(voiced) - voiced[::-1].index(True) - voiced.index(True)) * 20
    assert abs(lengths[0] - lengths[1]) <= 100, lengths  # 900 ms more silence and 400 ms more padding, exactly
    assert all(abs(measured - voiced_ms) <= 200 for measured in lengths), (lengths, voiced_ms)


async def test_a_hint_is_spoken_sentence_by_sentence_before_the_model_has_finished(
    peer: TestPeer, stub: ChatStub
) -> None:
    peer.send(hint_request("How do we scale the support team?"))
    await peer.wait_for("output_audio_buffer.started", seconds=20)
    assert stub.record.finished == 0 and stub.record.tokens_sent < len(HINT)  # the second sentence is still coming
    done = await peer.wait_for("response.done", seconds=20)
    await peer.wait_for("output_audio_buffer.stopped", seconds=20)
    response = done["response"]
    assert response["status"] == "completed"
    assert response["output"][0]["content"][0]["transcript"] == "".join(HINT)
    request = stub.record.requests[-1]
    assert request["messages"] == [
        {"role": "system", "content": "You are a discreet coach. One short hint."},
        {"role": "user", "content": "How do we scale the support team?"},
    ]
    assert request["max_tokens"] == 300 and request["stream"] is True
    usage = response["usage"]
    assert usage["input_tokens"] == 42 and usage["output_token_details"]["text_tokens"] == len(HINT)  # the model's
    assert usage["output_token_details"]["audio_tokens"] > 0
    assert sum(voiced_frames(peer.received_audio)) * 0.02 > 1.0  # seconds of the coach's voice came over RTP


async def test_cancel_mid_hint_silences_the_next_frame_and_drops_the_models_stream(
    server: RealtimeServer, peer: TestPeer, stub: ChatStub
) -> None:
    stub.config.reply = ["Say ", "this. ", *(f"then{i} " for i in range(40)), "end."]  # a short sentence, a long one
    peer.send(hint_request("Walk me through it.", max_output_tokens="inf"))
    started = await peer.wait_for("output_audio_buffer.started", seconds=20)
    call = server.calls[0]
    assert isinstance(call, Call)
    # The client's interrupt (design.md §4): response.cancel while generating, then output_audio_buffer.clear.
    peer.send({"type": "response.cancel", "response_id": started["response_id"]})
    peer.send({"type": "output_audio_buffer.clear"})
    cleared = await peer.wait_for("output_audio_buffer.cleared", seconds=10)
    assert cleared["response_id"] == started["response_id"]
    assert call.track.queued_samples == 0  # the track's next frame is silence: within one 20 ms frame
    done = await peer.wait_for("response.done", seconds=10)
    assert done["response"]["status"] == "cancelled"
    async with asyncio.timeout(5):
        await stub.disconnected.wait()  # the model's HTTP stream was dropped, not read to its end
    assert stub.record.finished == 0 and stub.record.tokens_sent < len(stub.config.reply)
    index = peer.events.index(done)
    await asyncio.sleep(0.6)  # let the jitter buffer deliver what was already on the wire
    tail = peer.received_audio[-20 * WIRE_FRAME_SAMPLES :]
    assert not any(voiced_frames(tail))  # nothing more was sent
    assert not [e for e in peer.events[index:] if e["type"] == "response.output_audio_transcript.delta"]
    assert call.track.queued_samples == 0


async def test_the_other_side_is_transcribed_over_a_transcription_websocket(
    server: RealtimeServer, connect: Any
) -> None:
    client = await connect(ws_url(server, "?intent=transcription"), headers=bearer(KEY))
    await client.wait_for("session.created")
    await client.send(transcription_update())
    await client.wait_for("session.updated")
    await speak(client, espeak("so tell me about a project you are proud of", WIRE_RATE), tail_seconds=1.0)
    done = await client.wait_for("conversation.item.input_audio_transcription.completed", seconds=30)
    errors, words = word_errors("so tell me about a project you are proud of", done["transcript"])
    assert errors / words <= MAX_WER, done["transcript"]
    assert not [t for t in client.types() if t.startswith("response.")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("local", "error", "exit_code", "words"),
    [
        ({"llm_url": "http://10.255.255.1:11434/v1"}, ConfigError, 2, ("not on this machine", "--allow-remote-llm")),
        ({"llm_url": f"http://127.0.0.1:{free_port()}/v1"}, LocalLlmUnreachable, 3, ("cannot reach",)),
        ({"llm_model": "llama-that-is-not-there"}, LocalLlmModelUnknown, 2, ("stub-model", "local_llm_model")),
        ({"stt_model": "/nonexistent/whisper-folder"}, LocalModelMissing, 2, ("does not exist",)),
    ],
)
async def test_a_missing_part_fails_the_start_with_one_line(
    stub: ChatStub, local: dict[str, Any], error: type[Exception], exit_code: int, words: tuple[str, ...]
) -> None:
    server = RealtimeServer(
        ServerConfig(
            api_key=KEY, backend="local", local=LocalConfig(llm_url=stub.url, llm_model=MODEL).model_copy(update=local)
        )
    )
    with pytest.raises(error) as info:
        await server.start()
    assert info.value.exit_code == exit_code  # type: ignore[attr-defined]
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert not stub.record.requests  # nothing was asked of the model
    assert server._runner is None  # and nothing listens: the server never started
    await server.stop()
