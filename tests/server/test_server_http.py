"""The HTTP endpoints of the local server: client secrets, calls (SDP and multipart), hangup, and their errors."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from openai.types.realtime import ClientSecretCreateResponse
from pydantic import TypeAdapter
from tests.server.conftest import API_KEY, Clock

from voicecoach.server import RealtimeServer

AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def post(
    http: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, dict[str, Any] | str, CIMultiDictProxy[str]]:
    async with asyncio.timeout(10), http.post(url, **kwargs) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp.headers


async def mint(server: RealtimeServer, http: aiohttp.ClientSession, **body: Any) -> dict[str, Any]:
    payload = {"session": {"type": "realtime", "model": "gpt-realtime-1.5"}, **body}
    status, reply, _ = await post(http, f"{server.base_url}/realtime/client_secrets", json=payload, headers=AUTH)
    assert status == 200, reply
    assert isinstance(reply, dict)
    return reply


async def test_client_secret_success(server: RealtimeServer, http: aiohttp.ClientSession, clock: Clock) -> None:
    reply = await mint(server, http, expires_after={"anchor": "created_at", "seconds": 120})
    assert re.fullmatch(r"ek_[0-9a-f]{32}", reply["value"])
    assert reply["expires_at"] == int(clock.now) + 120
    session = reply["session"]
    assert session["model"] == "gpt-realtime-1.5" and session["object"] == "realtime.session"
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    TypeAdapter(ClientSecretCreateResponse).validate_python(reply, strict=True)
    default = await mint(server, http)
    assert default["expires_at"] == int(clock.now) + 600


@pytest.mark.parametrize(
    ("headers", "message_start"),
    [
        ({}, "You didn't provide an API key."),
        ({"Authorization": "Bearer sk-wrong-key-000000000"}, "Incorrect API key provided: sk-"),
        ({"Authorization": "Bearer ek_0123456789abcdef0123456789abcdef"}, "Incorrect API key provided: ek_"),
        ({"Authorization": "Basic abc"}, "You didn't provide an API key."),
    ],
)
async def test_client_secret_401(
    server: RealtimeServer, http: aiohttp.ClientSession, headers: dict[str, str], message_start: str
) -> None:
    status, body, _ = await post(
        http, f"{server.base_url}/realtime/client_secrets", json={"session": {"type": "realtime"}}, headers=headers
    )
    assert status == 401
    assert isinstance(body, dict)
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"].startswith(message_start)
    assert "sk-wrong-key-000000000" not in error["message"] and "0123456789abcdef0123" not in error["message"]


@pytest.mark.parametrize(
    ("payload", "code", "param"),
    [
        ({}, "missing_required_parameter", "session"),
        ({"session": {"model": "gpt-realtime"}}, "missing_required_parameter", "session.type"),
        ({"session": {"type": "realtime", "modalities": ["text"]}}, "unknown_parameter", "session.modalities"),
        ({"session": {"type": "realtime"}, "bogus": 1}, "unknown_parameter", "bogus"),
        (
            {"session": {"type": "realtime"}, "expires_after": {"seconds": 5}},
            "integer_below_min_value",
            "expires_after.seconds",
        ),
        (
            {"session": {"type": "realtime"}, "expires_after": {"seconds": 8000}},
            "integer_above_max_value",
            "expires_after.seconds",
        ),
        (
            {"session": {"type": "realtime"}, "expires_after": {"anchor": "now"}},
            "invalid_value",
            "expires_after.anchor",
        ),
    ],
)
async def test_client_secret_400(
    server: RealtimeServer, http: aiohttp.ClientSession, payload: dict[str, Any], code: str, param: str
) -> None:
    status, body, _ = await post(http, f"{server.base_url}/realtime/client_secrets", json=payload, headers=AUTH)
    assert status == 400
    assert isinstance(body, dict)
    assert (body["error"]["code"], body["error"]["param"]) == (code, param)


async def test_client_secret_rejects_a_non_json_body(server: RealtimeServer, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post(http, f"{server.base_url}/realtime/client_secrets", data="{nope", headers=AUTH)
    assert status == 400
    assert isinstance(body, dict) and "could not parse the JSON body" in body["error"]["message"]


async def test_call_with_an_ephemeral_key(server: RealtimeServer, http: aiohttp.ClientSession, offer: str) -> None:
    key = (
        await mint(server, http, session={"type": "realtime", "model": "gpt-realtime-1.5", "instructions": "Whisper."})
    )["value"]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}
    status, answer, resp_headers = await post(
        http, f"{server.base_url}/realtime/calls?model=ignored", data=offer, headers=headers
    )
    assert status == 201
    assert resp_headers["Content-Type"].startswith("application/sdp")
    location = resp_headers["Location"]
    assert re.fullmatch(r"/v1/realtime/calls/rtc_[0-9a-f]{32}", location)
    assert isinstance(answer, str) and answer.startswith("v=0")
    assert answer.count("a=ice-ufrag:") == 2 and "127.0.0.1" in answer  # ICE credentials in every m-section
    call = await server.wait_for_call(0)
    assert call.id == location.rsplit("/", 1)[-1]
    assert call.session.session["instructions"] == "Whisper."
    assert call.session.session["model"] == "gpt-realtime-1.5"


@pytest.mark.parametrize("key", ["ek_0123456789abcdef0123456789abcdef", None, "expired"])
async def test_call_401(
    server: RealtimeServer, http: aiohttp.ClientSession, offer: str, clock: Clock, key: str | None
) -> None:
    headers = {"Content-Type": "application/sdp"}
    if key == "expired":
        key = (await mint(server, http, expires_after={"seconds": 10}))["value"]
        clock.now += 11
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    status, body, _ = await post(http, f"{server.base_url}/realtime/calls", data=offer, headers=headers)
    assert status == 401
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    assert server.calls == []


async def test_call_400_for_garbage_sdp(server: RealtimeServer, http: aiohttp.ClientSession) -> None:
    key = (await mint(server, http))["value"]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}
    for garbage in ("hello", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nnot sdp at all\r\n"):
        status, body, _ = await post(http, f"{server.base_url}/realtime/calls", data=garbage, headers=headers)
        assert status == 400
        assert isinstance(body, dict) and body["error"]["message"].startswith("Invalid SDP offer: ")
        assert len(body["error"]["message"]) > len("Invalid SDP offer: ")
    assert server.calls == []


async def test_call_multipart_with_an_api_key(server: RealtimeServer, http: aiohttp.ClientSession, offer: str) -> None:
    form = aiohttp.FormData()
    form.add_field("sdp", offer, content_type="application/sdp")
    form.add_field(
        "session",
        '{"type": "realtime", "model": "gpt-realtime-2", "instructions": "Hi."}',
        content_type="application/json",
    )
    status, answer, _ = await post(http, f"{server.base_url}/realtime/calls", data=form, headers=AUTH)
    assert status == 201 and isinstance(answer, str) and answer.startswith("v=0")
    call = await server.wait_for_call(0)
    assert call.session.session["instructions"] == "Hi." and call.session.session["model"] == "gpt-realtime-2"
    bad = aiohttp.FormData()
    bad.add_field("sdp", offer, content_type="application/sdp")
    bad.add_field("session", '{"type": "realtime", "voice": "alloy"}', content_type="application/json")
    status, body, _ = await post(http, f"{server.base_url}/realtime/calls", data=bad, headers=AUTH)
    assert status == 400 and isinstance(body, dict) and body["error"]["param"] == "session.voice"


async def test_call_rejects_other_content_types(
    server: RealtimeServer, http: aiohttp.ClientSession, offer: str
) -> None:
    status, body, _ = await post(http, f"{server.base_url}/realtime/calls", json={"sdp": offer}, headers=AUTH)
    assert status == 400 and isinstance(body, dict) and "application/sdp" in body["error"]["message"]


async def test_hangup(server: RealtimeServer, http: aiohttp.ClientSession, offer: str) -> None:
    headers = {**AUTH, "Content-Type": "application/sdp"}
    status, _, resp_headers = await post(http, f"{server.base_url}/realtime/calls", data=offer, headers=headers)
    assert status == 201
    call_id = resp_headers["Location"].rsplit("/", 1)[-1]
    status, _, _ = await post(http, f"{server.base_url}/realtime/calls/{call_id}/hangup", headers=AUTH)
    assert status == 200
    assert server.calls[0].closed
    status, body, _ = await post(http, f"{server.base_url}/realtime/calls/rtc_nope/hangup", headers=AUTH)
    assert status == 404 and isinstance(body, dict) and body["error"]["code"] == "call_not_found"
