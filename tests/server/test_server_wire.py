"""The call loop and the data channel: no polling, and no event silently lost to max-message-size.

Real aiortc peers on 127.0.0.1. The peer here offers audio ``recvonly`` (it sends no microphone frames), so
that nothing but the server's own deadlines can wake its call loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from tests.server.conftest import API_KEY

from voicecoach.server import RealtimeServer, RealtimeSession, Scenario, ServerConfig
from voicecoach.server.defaults import default_session
from voicecoach.server.fitting import encode, fit_event, max_message_size, size
from voicecoach.server.ids import IdFactory
from voicecoach.server.outputs import Output, Synthesize
from voicecoach.server.voice import synth_speech
from voicecoach.transport.ice import pin_host_addresses

LONG_WORD = "Budget" + 'é"x' * 1200  # one "word": the scripted reply is a single ~3.6 KB delta
TEXT_ONLY = {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}


class QuietPeer:
    """Data channel plus a receive-only audio transceiver; records every message with its size."""

    def __init__(self) -> None:
        pin_host_addresses(["127.0.0.1"])
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("audio", direction="recvonly")
        self.channel = self.pc.createDataChannel("oai-events")
        self.events: list[dict[str, Any]] = []
        self.sizes: list[int] = []
        self._arrived = asyncio.Event()
        self._open = asyncio.Event()
        self.channel.on("open", self._open.set)

        @self.channel.on("message")
        def on_message(message: str | bytes) -> None:
            text = message.decode() if isinstance(message, bytes) else message
            self.sizes.append(len(text.encode()))
            self.events.append(json.loads(text))
            self._arrived.set()

    async def connect(self, base_url: str, *, max_message_size: int | None = None) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription.sdp
        if max_message_size is not None:  # what the server reads; this peer itself accepts anything
            offer = re.sub(r"a=max-message-size:\d+", f"a=max-message-size:{max_message_size}", offer)
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/sdp"}
        async with asyncio.timeout(10), aiohttp.ClientSession() as http:
            async with http.post(f"{base_url}/realtime/calls", data=offer, headers=headers) as resp:
                answer = await resp.text()
                assert resp.status == 201, answer
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            await self._open.wait()

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))

    async def wait_for(self, kind: str, *, after: int = 0, seconds: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(seconds):
            while (found := next((e for e in self.events[after:] if e["type"] == kind), None)) is None:
                self._arrived.clear()
                await self._arrived.wait()
        return found

    def types(self, after: int = 0) -> list[str]:
        return [e["type"] for e in self.events[after:]]


@pytest.fixture
async def long_reply_server() -> AsyncIterator[RealtimeServer]:
    scenario = Scenario(utterances=["Hello."], responses=[LONG_WORD])
    config = ServerConfig(api_key=API_KEY, voice="synth", scenario=scenario, generation_speed=50.0)
    async with RealtimeServer(config) as server:
        yield server


def count_ticks(session: RealtimeSession, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the time of every ``session.tick`` call (the call loop ticks each time it wakes)."""
    calls: list[float] = []
    real = session.tick

    def tick(now: float) -> list[Output]:
        calls.append(now)
        return real(now)

    monkeypatch.setattr(session, "tick", tick)
    return calls


async def test_an_idle_call_loop_sleeps_until_the_next_deadline(
    long_reply_server: RealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = QuietPeer()
    try:
        await peer.connect(long_reply_server.base_url)
        await peer.wait_for("session.created")
        call = long_reply_server.calls[0]
        ticks = count_ticks(call.session, monkeypatch)
        await asyncio.sleep(0.6)  # the window being measured: nothing is due, nothing arrives
        assert len(ticks) <= 1, f"the call loop woke {len(ticks)} times in 0.6 s with nothing to do"

        # A timer in the core (as transcription deltas use) wakes the loop by its deadline, with no input.
        loop = asyncio.get_running_loop()
        started = loop.time()

        def schedule(session: RealtimeSession, now: float) -> list[Output]:
            session.at(now + 0.3, lambda: [session.event("input_audio_buffer.cleared")])
            return []

        ticks.clear()
        call.run_in_pump(schedule)
        await peer.wait_for("input_audio_buffer.cleared", seconds=5)
        assert loop.time() - started >= 0.29  # not before its deadline
        assert len(ticks) <= 3, f"{len(ticks)} wake-ups for one timer"
    finally:
        await peer.pc.close()


async def test_a_text_response_runs_on_deadlines_alone(long_reply_server: RealtimeServer) -> None:
    """With no input at all after response.create, the response still streams and ends (deltas are deadlines)."""
    peer = QuietPeer()
    try:
        await peer.connect(long_reply_server.base_url)
        peer.send(TEXT_ONLY)
        await peer.wait_for("session.updated")
        start = len(peer.events)
        peer.send({"type": "response.create"})
        done = await peer.wait_for("response.done", after=start)
        assert done["response"]["status"] == "completed"
        assert "response.output_text.delta" in peer.types(start)
    finally:
        await peer.pc.close()


async def test_an_oversize_delta_is_split_and_the_rest_becomes_an_error(
    long_reply_server: RealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    limit = 2048
    peer = QuietPeer()
    caplog.set_level(logging.WARNING, logger="voicecoach.server.call")
    try:
        await peer.connect(long_reply_server.base_url, max_message_size=limit)
        peer.send(TEXT_ONLY)
        await peer.wait_for("session.updated")
        start = len(peer.events)
        peer.send({"type": "response.create"})
        await peer.wait_for("rate_limits.updated", after=start)
        await asyncio.sleep(0.1)  # let anything still in flight arrive before counting
        assert max(peer.sizes) <= limit
        deltas = [e for e in peer.events[start:] if e["type"] == "response.output_text.delta"]
        assert len(deltas) >= 2 and "".join(e["delta"] for e in deltas) == LONG_WORD
        assert len({e["event_id"] for e in deltas}) == len(deltas)
        # done events carry the whole text and cannot be split: each is replaced by an error, and logged.
        errors = [e["error"] for e in peer.events[start:] if e["type"] == "error"]
        too_large = {"response.output_text.done", "response.content_part.done", "response.output_item.done"}
        named = {m[1] for e in errors if (m := re.search(r"send a '([^']+)' event", e["message"]))}
        assert too_large | {"response.done"} <= named
        assert all(e["type"] == "server_error" for e in errors)
        logged = [r.getMessage() for r in caplog.records if "max-message-size" in r.getMessage()]
        assert len(logged) == len(errors)
        # Nothing was dropped silently: every event recorded as sent reached the peer.
        assert len(peer.events) == len(long_reply_server.calls[0].events_sent)
    finally:
        await peer.pc.close()


# --- the fitting itself (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [LONG_WORD, "\u0001" * 900, "日本語" * 700, "a" * 5000])
def test_fit_event_splits_deltas_within_the_limit(text: str) -> None:
    event = {
        "type": "conversation.item.input_audio_transcription.delta",
        "event_id": "event_" + "A" * 21,
        "item_id": "item_" + "B" * 21,
        "content_index": 0,
        "delta": text,
        "obfuscation": "abcd",
    }
    wire = fit_event(event, 1024, IdFactory(seed=1))
    assert wire is not None and len(wire) > 1
    assert all(size(body) <= 1024 and json.loads(body) == part for part, body in wire)
    assert "".join(part["delta"] for part, _ in wire) == text
    assert wire[0][0]["event_id"] == event["event_id"]


def test_fit_event_refuses_what_cannot_be_split() -> None:
    ids = IdFactory(seed=2)
    done = {"type": "response.output_text.done", "event_id": "event_x", "text": "y" * 4000}
    assert fit_event(done, 1024, ids) is None
    assert fit_event(done, None, ids) == [(done, encode(done))]  # a=max-message-size:0 means no limit
    tiny = {"type": "response.output_text.delta", "event_id": "event_x", "delta": "y" * 400}
    assert fit_event(tiny, 60, ids) is None  # not even one character fits next to the event's other fields


@pytest.mark.parametrize(
    ("line", "expected"),
    [("a=max-message-size:262144\r\n", 262144), ("a=max-message-size:0\r\n", None), ("", 65536)],
)
def test_max_message_size_from_the_offer(line: str, expected: int | None) -> None:
    offer = f"v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\n{line}"
    assert max_message_size(offer) == expected


def test_a_response_waiting_for_its_voice_sets_no_deadline() -> None:
    """Otherwise its start time, once past, would make the call loop spin until the voice is rendered."""
    session = RealtimeSession(
        default_session("sess_test"), now=0.0, unix_time=1_700_000_000.0, scenario=Scenario(), ids=IdFactory(seed=3)
    )
    session.start(0.0)
    outputs = session.receive_text(json.dumps({"type": "response.create"}), 0.0)
    assert any(isinstance(o, Synthesize) for o in outputs)
    expiry = session.next_deadline()
    assert expiry is not None and expiry >= session.options.session_max_seconds  # only the session's expiry
    response_id = next(o.response_id for o in outputs if isinstance(o, Synthesize))
    session.speech_ready(response_id, synth_speech("Ask about the budget."), 1.0)
    deadline = session.next_deadline()
    assert deadline is not None and 1.0 <= deadline < 5.0  # now the deltas are due
