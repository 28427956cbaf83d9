"""The WebSocket transport against a small aiohttp WebSocket server on 127.0.0.1 written here.

The server records what the client sent (with arrival times) and does what each test asks: answer the
upgrade with 401, refuse the key after upgrading, stop answering pings, send coach audio faster than real time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from pydantic import SecretStr
from tests.test_conformance_client import check

from voicecoach.audio.files import PcmSource, WavSink, read_wav
from voicecoach.audio.frames import WIRE_RATE, Pcm, envelope, rms
from voicecoach.audio.tracks import Player
from voicecoach.config import Settings
from voicecoach.errors import AuthError, RequestRejected, SignalingTimeout, Unreachable
from voicecoach.protocol import client_events as ce
from voicecoach.session_config import build_session
from voicecoach.transport.choice import websocket_factory
from voicecoach.transport.websocket import WS_RATE, WebSocketTransport, auth_message, realtime_url

BOUND_S = 10.0
KEY = SecretStr("sk-test-secret-value-123456")
HINT_RESPONSE = "resp_hint_1"


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = BOUND_S) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def tone(ms: float, freq: float = 1000.0, rate: int = WIRE_RATE, level: float = 0.3) -> Pcm:
    n = int(rate * ms / 1000)
    return (np.sin(2 * np.pi * freq * np.arange(n) / rate) * level * 32767).astype(np.int16)


def dominant_hz(pcm: Pcm, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[int(np.argmax(spectrum))])


def b64(pcm: Pcm) -> str:
    return base64.b64encode(pcm.astype("<i2").tobytes()).decode()


@dataclass
class FakeRealtime:
    """What the fake server saw, and how it behaves (set by the test before connecting)."""

    mode: str = "normal"  # normal | http401 | key3000 | beta4000 | silent | frozen
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    path: str = ""
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    socket: web.WebSocketResponse | None = None
    url: str = ""

    def sent(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in self.events if e.get("type") == kind]

    async def push(self, *events: dict[str, Any]) -> None:
        assert self.socket is not None
        for event in events:
            await self.socket.send_str(json.dumps(event))


@pytest.fixture
async def fake() -> AsyncIterator[FakeRealtime]:
    state = FakeRealtime()
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        state.headers = dict(request.headers)
        state.query = dict(request.query)
        state.path = request.path
        if state.mode == "http401":
            return web.json_response({"error": {"message": "Incorrect API key provided"}}, status=401)
        ws = web.WebSocketResponse(autoping=state.mode != "frozen")
        await ws.prepare(request)
        state.socket = ws
        if state.mode == "key3000":
            error = {"type": "invalid_request_error", "code": "invalid_api_key", "message": "Incorrect API key"}
            await ws.send_str(json.dumps({"type": "error", "event_id": "e1", "error": error}))
            await ws.close(code=3000, message=b"invalid_request_error.invalid_api_key")
            return ws
        if state.mode == "beta4000":
            error = {"type": "invalid_request_error", "code": "beta_api_shape_disabled", "message": "beta shape"}
            await ws.send_str(json.dumps({"type": "error", "event_id": "e1", "error": error}))
            await ws.close(code=4000)
            return ws
        if state.mode == "silent":
            await release.wait()
            return ws
        await ws.send_str(json.dumps({"type": "session.created", "session": {}}))
        if state.mode == "frozen":  # no reads, so no pongs, and no data: a peer that stopped
            await release.wait()
            return ws
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                event = json.loads(msg.data)
                state.events.append((time.monotonic(), event))
                if event.get("type") == "session.update":
                    await ws.send_str(json.dumps({"type": "session.updated", "session": event["session"]}))
        return ws

    app = web.Application()
    app.router.add_get("/v1/realtime", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/v1"
    yield state
    release.set()
    await runner.cleanup()


@pytest.fixture
async def connect(fake: FakeRealtime) -> AsyncIterator[Callable[..., Awaitable[WebSocketTransport]]]:
    """Open transports to the fake server; each is closed after the test."""
    opened: list[WebSocketTransport] = []
    async with aiohttp.ClientSession() as http:

        async def make(source: Any = None, timeout_s: float = 5.0, **kwargs: Any) -> WebSocketTransport:
            source = source or PcmSource(np.zeros(0, dtype=np.int16), WIRE_RATE)
            t = WebSocketTransport(source, http, realtime_url(fake.url, "gpt-realtime-1.5"), KEY, **kwargs)
            opened.append(t)
            await t.connect(timeout_s)
            return t

        yield make
        for t in opened:
            await t.close()


def appended(fake: FakeRealtime) -> tuple[list[float], Pcm]:
    """Arrival times of the appends and their audio, decoded and joined."""
    appends = fake.sent("input_audio_buffer.append")
    audio = b"".join(base64.b64decode(e["audio"]) for _, e in appends)
    return [t for t, _ in appends], np.frombuffer(audio, dtype="<i2").astype(np.int16)


# --- connect ---------------------------------------------------------------------------------------------------


def test_url_has_the_websocket_scheme_and_the_model() -> None:
    assert (
        realtime_url("https://api.openai.com/v1", "gpt-realtime")
        == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    )
    assert realtime_url("http://127.0.0.1:8765/v1/", "a b") == "ws://127.0.0.1:8765/v1/realtime?model=a%20b"


async def test_upgrade_sends_the_bearer_key_and_no_beta_header(fake: FakeRealtime, connect: Any) -> None:
    t = await connect()
    assert fake.path == "/v1/realtime"
    assert fake.query == {"model": "gpt-realtime-1.5"}
    assert fake.headers["Authorization"] == f"Bearer {KEY.get_secret_value()}"
    assert not any(name.lower() == "openai-beta" for name in fake.headers)
    assert set(t.timings) == {"ws_upgrade_ms", "first_event_ms"} and all(v >= 0 for v in t.timings.values())
    first = await anext(aiter(t.messages()))
    assert json.loads(first)["type"] == "session.created"  # the event connect() waited for is not lost


async def test_the_factory_builds_a_websocket_transport_for_the_settings(fake: FakeRealtime) -> None:
    settings = Settings(base_url=fake.url, model="gpt-realtime-mini")
    async with aiohttp.ClientSession() as http:
        t = websocket_factory(http, settings)(PcmSource(np.zeros(0, dtype=np.int16), WIRE_RATE), KEY)
        assert isinstance(t, WebSocketTransport) and t.name == "websocket"
        try:
            await t.connect(5.0)
        finally:
            await t.close()
    assert fake.query == {"model": "gpt-realtime-mini"}


@pytest.mark.parametrize("mode", ["http401", "key3000"])
async def test_a_refused_key_is_the_same_auth_error_either_way(fake: FakeRealtime, connect: Any, mode: str) -> None:
    fake.mode = mode
    with pytest.raises(AuthError) as caught:
        await connect()
    host = fake.url.split("//")[1].split("/")[0]
    assert str(caught.value) == auth_message(host)
    assert "\n" not in str(caught.value) and KEY.get_secret_value() not in str(caught.value)
    assert not caught.value.retryable


async def test_other_refusals_are_one_line_errors(fake: FakeRealtime, connect: Any) -> None:
    fake.mode = "beta4000"
    with pytest.raises(RequestRejected, match="beta_api_shape_disabled"):
        await connect()
    fake.mode = "silent"
    with pytest.raises(SignalingTimeout, match=r"did not open within 0\.3 s"):
        await connect(timeout_s=0.3)


async def test_no_server_is_unreachable_and_a_wrong_path_is_rejected(fake: FakeRealtime) -> None:
    async with aiohttp.ClientSession() as http:
        nowhere = WebSocketTransport(PcmSource(np.zeros(0, np.int16), WIRE_RATE), http, "ws://127.0.0.1:9/v1", KEY)
        with pytest.raises(Unreachable, match=r"cannot connect to 127\.0\.0\.1:9"):
            await nowhere.connect(5.0)
        await nowhere.close()
        wrong = WebSocketTransport(PcmSource(np.zeros(0, np.int16), WIRE_RATE), http, fake.url + "/nope", KEY)
        with pytest.raises(RequestRejected, match="HTTP 404"):
            await wrong.connect(5.0)
        await wrong.close()


# --- microphone ------------------------------------------------------------------------------------------------


async def test_nothing_is_appended_before_the_gate_then_24khz_pcm_every_40ms(fake: FakeRealtime, connect: Any) -> None:
    source = PcmSource(tone(3000, freq=1000), WIRE_RATE)  # a file: paced by the wall clock, not read at once
    t = await connect(source)
    await asyncio.sleep(0.3)
    assert fake.sent("input_audio_buffer.append") == [], "mic audio went out before session.updated"
    gate_at = time.monotonic()
    t.uplink.open_gate()
    await wait_for(lambda: len(fake.sent("input_audio_buffer.append")) >= 25, "25 appends")
    times, pcm = appended(fake)
    elapsed = times[-1] - gate_at
    assert pcm.size / WS_RATE == pytest.approx(elapsed, abs=0.1), "the file is sent in real time"
    gaps = np.diff(times)
    assert 0.030 <= float(np.median(gaps)) <= 0.050
    sizes = [len(base64.b64decode(e["audio"])) for _, e in fake.sent("input_audio_buffer.append")]
    assert all(s == 1920 for s in sizes[1:]), sizes  # 40 ms of 24 kHz PCM16 each
    steady = pcm[480:]
    assert dominant_hz(steady, WS_RATE) == pytest.approx(1000, abs=5)
    assert rms(steady) == pytest.approx(0.3 / np.sqrt(2), rel=0.03)


async def test_muted_appends_silence_and_unmuting_resumes(fake: FakeRealtime, connect: Any) -> None:
    t = await connect(PcmSource(tone(5000), WIRE_RATE))
    t.uplink.muted = True
    t.uplink.open_gate()
    await wait_for(lambda: len(fake.sent("input_audio_buffer.append")) >= 8, "appends while muted")
    _, muted = appended(fake)
    assert muted.size > 0 and int(np.abs(muted).max()) == 0
    t.uplink.muted = False
    count = len(fake.sent("input_audio_buffer.append"))
    await wait_for(lambda: len(fake.sent("input_audio_buffer.append")) >= count + 8, "appends after unmuting")
    _, both = appended(fake)
    assert rms(both[muted.size + 960 :]) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


# --- events ----------------------------------------------------------------------------------------------------


async def test_sent_events_validate_and_the_webrtc_only_clear_never_goes_out(fake: FakeRealtime, connect: Any) -> None:
    t = await connect(PcmSource(tone(1000), WIRE_RATE))
    update = ce.SessionUpdate(session=build_session(Settings())).to_wire()
    t.send(update)
    await wait_for(lambda: bool(fake.sent("session.updated") or fake.sent("session.update")), "session.update")
    t.uplink.open_gate()
    assert t.send(ce.OutputAudioBufferClear().to_wire()) == ""
    t.send(ce.ResponseCancel(response_id="resp_1").to_wire())
    await wait_for(lambda: bool(fake.sent("response.cancel")), "the cancel")
    await wait_for(lambda: len(fake.sent("input_audio_buffer.append")) >= 3, "appends")
    kinds = [e["type"] for _, e in fake.events]
    assert "output_audio_buffer.clear" not in kinds
    session = fake.sent("session.update")[0][1]["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert "format" not in update["session"]["audio"]["input"], "the caller's event is not changed"
    assert fake.sent("response.cancel")[0][1] == {"type": "response.cancel", "response_id": "resp_1"}
    for _, event in fake.events:
        check(event)


# --- coach audio -----------------------------------------------------------------------------------------------


async def test_deltas_arriving_at_once_play_in_real_time_into_the_output_file(
    fake: FakeRealtime, connect: Any, tmp_path: Path
) -> None:
    path = tmp_path / "out.wav"
    sink = WavSink(path, rate=24000, channels=1)
    player = Player(sink, prebuffer_ms=80)
    t = await connect()
    seen: list[dict[str, Any]] = []

    async def events() -> None:
        async for raw in t.messages():
            event = json.loads(raw)
            seen.append(event)
            if event["type"] == "response.created":
                player.mark_response(event["response"]["id"])  # what the coach's ExpectAudio does

    started = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(events())
        playing = tg.create_task(t.play(player))
        await asyncio.sleep(0.5)
        hint = np.concatenate([tone(600, 440, WS_RATE), np.zeros(WS_RATE * 3 // 10, np.int16), tone(600, 440, WS_RATE)])
        sent_at = time.monotonic()
        deltas = [hint[i : i + 4800] for i in range(0, hint.size, 4800)]  # 200 ms each, all sent at once
        await fake.push(
            {"type": "response.created", "response": {"id": HINT_RESPONSE}},
            *(
                {"type": "response.output_audio.delta", "response_id": HINT_RESPONSE, "item_id": "i", "delta": b64(d)}
                for d in deltas
            ),
            {"type": "response.output_audio.done", "response_id": HINT_RESPONSE, "item_id": "i"},
        )
        await wait_for(lambda: sink.frames_written >= 24000 * (sent_at - started + 2.0), "2 s of file after the hint")
        played = player.played_ms(HINT_RESPONSE)
        await t.close()
        await asyncio.wait_for(playing, BOUND_S)
    sink.close()
    audio_events = [e for e in seen if e["type"] == "response.output_audio.delta"]
    assert len(audio_events) == len(deltas) and all("delta" not in e for e in audio_events)
    assert all(e["response_id"] == HINT_RESPONSE for e in audio_events)
    assert played == pytest.approx(1200, abs=25)  # the loud part of the hint, all of it played
    pcm, rate = read_wav(path)
    env = envelope(pcm[:, 0] if pcm.ndim == 2 else pcm, rate, 10) > 0.05
    loud = np.flatnonzero(env)
    onset_s, end_s = loud[0] / 100, loud[-1] / 100
    assert onset_s == pytest.approx(sent_at - started + 0.08, abs=0.1), "silence before the hint, on the clock"
    assert end_s - onset_s == pytest.approx(1.5, abs=0.05), "played at real pace, pause included"
    assert not env[int(onset_s * 100) + 65 : int(onset_s * 100) + 85].any(), "the 300 ms pause is kept"


class PulledSink:
    """A device stand-in whose audio callback is the test (PullSink protocol)."""

    rate, channels, output_latency = 48000, 2, 0.0

    def __init__(self) -> None:
        self.pull: Callable[[Pcm], None] | None = None

    def start(self, pull: Callable[[Pcm], None]) -> None:
        self.pull = pull

    def write(self, pcm: Pcm) -> None:
        raise AssertionError("a pull sink is never written to")

    def close(self) -> None:
        pass

    def read(self, seconds: float) -> Pcm:
        assert self.pull is not None
        blocks = []
        for _ in range(int(seconds * 100)):
            block = np.zeros((480, 2), np.int16)
            self.pull(block)
            blocks.append(block[:, 0])
        return np.concatenate(blocks)


async def test_a_30s_hint_at_once_is_kept_whole_and_flush_drops_it_and_its_tail() -> None:
    sink = PulledSink()
    player = Player(sink, prebuffer_ms=80)
    player.mark_response("r1")
    never = asyncio.Event()
    from voicecoach.transport.websocket import _UntilClosed

    running = asyncio.create_task(player.run(_UntilClosed(never)))
    await asyncio.sleep(0)
    hint = tone(30_000, 440, WS_RATE)
    for i in range(0, hint.size, 24_000):
        player.feed(hint[i : i + 24_000], WS_RATE, "r1")
    out = sink.read(30.5)
    assert (envelope(out, 48000, 10) > 0.05).sum() == pytest.approx(3000, abs=3), "all 30 s played, none dropped"
    assert player.played_ms("r1") == pytest.approx(30_000, abs=25)
    player.feed(tone(5000, 440, WS_RATE), WS_RATE, "r1")
    sink.read(1.0)
    player.flush()
    player.feed(tone(1000, 440, WS_RATE), WS_RATE, "r1")  # the cancelled response's tail, still in flight
    assert rms(sink.read(2.0)[480:]) == 0, "the backlog and the tail of a flushed response never play"
    player.mark_response("r2")
    player.feed(tone(500, 440, WS_RATE), WS_RATE, "r2")
    assert (envelope(sink.read(1.0), 48000, 10) > 0.05).sum() == pytest.approx(50, abs=2)
    never.set()
    await asyncio.wait_for(running, BOUND_S)


# --- dead link -------------------------------------------------------------------------------------------------


async def test_a_peer_that_stops_answering_pings_is_declared_dead(fake: FakeRealtime, connect: Any) -> None:
    fake.mode = "frozen"
    t = await connect(dead_link_s=0.6)
    started = time.monotonic()
    async with asyncio.timeout(BOUND_S):
        await t.closed.wait()
    assert time.monotonic() - started == pytest.approx(0.6, abs=0.2)
    assert t.close_reason == "no data from the server for 0.6 s"


async def test_a_quiet_peer_that_answers_pings_stays_up(fake: FakeRealtime, connect: Any) -> None:
    t = await connect(dead_link_s=0.3)  # no audio, no events: only pings and pongs flow
    await asyncio.sleep(1.2)
    assert not t.closed.is_set(), t.close_reason


# --- against the local server (voicecoach serve) ---------------------------------------------------------------


async def test_against_the_local_server_a_hint_plays_and_a_wrong_key_is_refused(
    server_factory: Callable[..., Awaitable[Any]], tmp_path: Path
) -> None:
    server = await server_factory(responses=["Ask about the budget first."], api_key=KEY.get_secret_value())
    url = realtime_url(server.base_url, "gpt-realtime-1.5")
    sink = WavSink(tmp_path / "out.wav", rate=24000, channels=1)
    player = Player(sink, prebuffer_ms=80)
    async with aiohttp.ClientSession() as http:
        wrong = WebSocketTransport(
            PcmSource(np.zeros(0, np.int16), WIRE_RATE), http, url, SecretStr("sk-wrong-key-9999")
        )
        with pytest.raises(AuthError) as caught:
            await wrong.connect(5.0)
        await wrong.close()
        assert str(caught.value) == auth_message(url.split("//")[1].split("/")[0])

        t = WebSocketTransport(PcmSource(tone(10_000), WIRE_RATE), http, url, KEY)
        seen: list[dict[str, Any]] = []

        async def events() -> None:
            async for raw in t.messages():
                event = json.loads(raw)
                seen.append(event)
                if event["type"] == "session.updated":
                    t.uplink.open_gate()
                    t.send({"type": "response.create", "response": {"conversation": "none", "metadata": {"k": "v"}}})
                elif event["type"] == "response.created":
                    player.mark_response(event["response"]["id"])

        try:
            await t.connect(5.0)
            t.send(ce.SessionUpdate(session=build_session(Settings())).to_wire())
            async with asyncio.TaskGroup() as tg:
                tg.create_task(events())
                playing = tg.create_task(t.play(player))
                await wait_for(lambda: any(e["type"] == "response.done" for e in seen), "the hint's response.done")
                rid = next(e["response"]["id"] for e in seen if e["type"] == "response.created")
                await wait_for(lambda: player.played_ms(rid) > 500, "the hint to play")
                await t.close()
                await asyncio.wait_for(playing, BOUND_S)
        finally:
            await t.close()
    sink.close()
    kinds = [e["type"] for e in seen]
    assert "response.output_audio.delta" in kinds and not any(k.startswith("output_audio_buffer.") for k in kinds)
    assert all("delta" not in e for e in seen if e["type"] == "response.output_audio.delta")
    errors = [e for e in seen if e["type"] == "error"]
    assert errors == [], errors  # the server accepted every event we sent, our mic appends included
