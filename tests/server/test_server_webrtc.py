"""Real aiortc loopback: a minimal WebRTC client against the local server, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import numpy as np
from tests.server.conftest import API_KEY
from tests.server.helpers import collapse
from tests.server.peer import TestPeer

from voicecoach.audio.frames import envelope, rms
from voicecoach.server import RealtimeServer, ServerConfig, synth_speech

LISTEN = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {
            "input": {
                "transcription": {"model": "gpt-4o-mini-transcribe"},
                "turn_detection": {"type": "server_vad", "create_response": False, "interrupt_response": False},
            }
        },
    },
}


async def ephemeral_key(base_url: str) -> str:
    async with aiohttp.ClientSession() as http, asyncio.timeout(10):
        body = {"session": {"type": "realtime", "model": "gpt-realtime"}}
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with http.post(f"{base_url}/realtime/client_secrets", json=body, headers=headers) as resp:
            assert resp.status == 200
            value: str = (await resp.json())["value"]
            return value


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition()`` (bounded) for state that has no event to wait on."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_listening_session_end_to_end(server: RealtimeServer) -> None:
    peer = TestPeer()
    try:
        await peer.connect(server.base_url, await ephemeral_key(server.base_url))
        created = await peer.wait_for("session.created")
        assert peer.events[0] is created
        peer.send(LISTEN)
        updated = await peer.wait_for("session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"]["create_response"] is False

        speech = synth_speech("hello there friend")
        peer.say(speech)
        completed = await peer.wait_for("conversation.item.input_audio_transcription.completed")
        assert completed["transcript"].startswith("Thanks for joining")  # the built-in scenario's first line
        assert collapse(peer.types())[2:8] == [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "conversation.item.input_audio_transcription.delta",
        ]
        assert "response.created" not in peer.types()

        start = len(peer.events)
        before = len(peer.heard)
        peer.send({"type": "response.create", "response": {"conversation": "none", "metadata": {"n": "1"}}})
        await peer.wait_for("output_audio_buffer.stopped", after=start, seconds=20)
        assert collapse(peer.types(start)) == [
            "response.created",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_audio_transcript.delta",
            "output_audio_buffer.started",
            "response.output_audio_transcript.delta",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.done",
            "rate_limits.updated",
            "output_audio_buffer.stopped",
        ]
        voice = np.concatenate(peer.heard[before:])
        assert rms(voice) > 0.01  # the coach's voice came through Opus
        assert rms(np.concatenate(peer.heard[: max(1, before // 2)])) < 0.001  # silence while idle

        call = server.calls[0]
        assert [e["type"] for e in call.events_received] == ["session.update", "response.create"]
        assert [e["type"] for e in call.events_sent] == peer.types()
        heard = envelope(call.received_audio, 48000)
        assert heard.max() > 0.05 and np.count_nonzero(heard > 0.02) >= 20  # ~1 s of speech reached the server
    finally:
        await peer.close()
    await until(lambda: server.calls[0].closed)


async def test_hangup_and_expiry_close_the_call() -> None:
    config = ServerConfig(voice="synth", session_max_seconds=2.0)
    async with RealtimeServer(config) as server:
        expiring = TestPeer()
        hung = TestPeer()
        try:
            await expiring.connect(server.base_url, "sk-anything")
            error = await expiring.wait_for("error", seconds=5)
            assert error["error"]["code"] == "session_expired"
            await until(lambda: server.calls[0].closed)
            assert server.calls[0].close_reason == "session_expired"

            await hung.connect(server.base_url, "sk-anything")
            await hung.wait_for("session.created")
            async with aiohttp.ClientSession() as http, asyncio.timeout(10):
                url = f"{server.base_url}/realtime/calls/{hung.call_id}/hangup"
                async with http.post(url, headers={"Authorization": "Bearer sk-anything"}) as resp:
                    assert resp.status == 200
            assert server.calls[1].closed
            await until(lambda: hung.pc.connectionState == "closed" or hung.channel.readyState == "closed")
        finally:
            await expiring.close()
            await hung.close()


async def test_events_sent_at_open_are_answered_after_session_created_and_stop_closes_calls() -> None:
    server = RealtimeServer(ServerConfig(voice="synth"))
    await server.start()
    peer = TestPeer(at_open=[LISTEN, {"type": "nope", "event_id": "early"}])
    try:
        await peer.connect(server.base_url, "sk-anything")
        await peer.wait_for("error")
        assert peer.types()[:3] == ["session.created", "session.updated", "error"]
        assert peer.events[2]["error"]["event_id"] == "early"
        await server.stop()
        assert server.calls[0].closed
        await until(lambda: peer.channel.readyState == "closed" or peer.pc.connectionState == "closed")
    finally:
        await peer.close()
        await server.stop()
