"""Signaling error mapping against a local aiohttp app that fails in each way the real API can."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from voicecoach import errors
from voicecoach.protocol.client_events import ClientSecretRequest, SessionConfig
from voicecoach.transport.signaling import create_client_secret, post_offer

KEY = SecretStr("sk-test-0123456789abcdef")
EK = SecretStr("ek_0123456789abcdef")
REQUEST = ClientSecretRequest(session=SessionConfig(model="gpt-realtime-1.5"))


def json_error(status: int, message: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return web.json_response(body, status=status)


class Scripted:
    """An app whose next reply is chosen by the test."""

    def __init__(self) -> None:
        self.reply: web.StreamResponse = web.json_response({"value": "ek_abc", "expires_at": 1})
        self.delay = 0.0
        self.seen: list[tuple[str, dict[str, str], str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, dict(request.headers), await request.text()))
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.reply


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    s = Scripted()
    app = web.Application()
    app.router.add_post("/v1/realtime/client_secrets", s.handle)
    app.router.add_post("/v1/realtime/calls", s.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield s, f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def test_client_secret_success_sends_bearer_and_ga_body(scripted: tuple[Scripted, str]) -> None:
    s, base = scripted
    async with aiohttp.ClientSession() as http:
        secret = await create_client_secret(http, base, KEY, REQUEST, timeout_s=2)
    assert secret.value.get_secret_value() == "ek_abc"
    path, headers, body = s.seen[0]
    assert path == "/v1/realtime/client_secrets"
    assert headers["Authorization"] == f"Bearer {KEY.get_secret_value()}"
    assert '"type":"realtime"' in body.replace(" ", "")


async def test_offer_success_returns_answer_and_call_id(scripted: tuple[Scripted, str]) -> None:
    s, base = scripted
    s.reply = web.Response(
        status=201,
        text="v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n",
        content_type="application/sdp",
        headers={"Location": "/v1/realtime/calls/rtc_abc123"},
    )
    async with aiohttp.ClientSession() as http:
        answer = await post_offer(http, base, EK, "v=0\r\noffer", timeout_s=2)
    assert answer.call_id == "rtc_abc123"
    assert answer.sdp.startswith("v=0")
    _, headers, body = s.seen[0]
    assert headers["Content-Type"] == "application/sdp"
    assert headers["Authorization"] == f"Bearer {EK.get_secret_value()}"
    assert body == "v=0\r\noffer"


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (json_error(401, "Incorrect API key provided: sk-test***cdef."), errors.AuthError, "HTTP 401"),
        (json_error(403, "Forbidden"), errors.AuthError, "HTTP 403"),
        (json_error(429, "You exceeded your current quota", "insufficient_quota"), errors.RateLimitError, "quota"),
        (
            json_error(400, "Invalid SDP offer: missing m-line"),
            errors.RequestRejected,
            "Invalid SDP offer: missing m-line",
        ),
        (web.Response(status=503, text="<html>busy</html>"), errors.ServerUnavailable, "HTTP 503"),
        (web.json_response({"nothing": 1}), errors.ServerUnavailable, "no usable 'value'"),
    ],
)
async def test_client_secret_failures(
    scripted: tuple[Scripted, str], reply: web.Response, error: type[errors.SignalingError], words: str
) -> None:
    s, base = scripted
    s.reply = reply
    async with aiohttp.ClientSession() as http:
        with pytest.raises(error) as info:
            await create_client_secret(http, base, KEY, REQUEST, timeout_s=2)
    message = str(info.value)
    assert words in message
    assert "\n" not in message
    assert "sk-test" not in message and KEY.get_secret_value() not in message


@pytest.mark.parametrize("mistake", ["http://127.0.0.1:{port}", "http://127.0.0.1:{port}/api"])
async def test_404_for_a_base_url_without_v1_says_to_add_it(scripted: tuple[Scripted, str], mistake: str) -> None:
    s, base = scripted
    base_url = mistake.format(port=base.split(":")[-1].removesuffix("/v1"))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.RequestRejected) as info:
            await create_client_secret(http, base_url, KEY, REQUEST, timeout_s=2)
    message = str(info.value)
    assert s.seen == []  # aiohttp's own 404: the route is under /v1 only
    assert f"{base_url}/realtime/client_secrets" in message  # the URL that was tried
    assert "HTTP 404" in message and "--base-url" in message and "ends in /v1" in message
    assert "\n" not in message and KEY.get_secret_value() not in message


async def test_404_under_v1_asks_whether_it_is_a_realtime_api(scripted: tuple[Scripted, str]) -> None:
    s, base = scripted
    s.reply = web.Response(status=404, text="no such route")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.RequestRejected) as info:
            await create_client_secret(http, base, KEY, REQUEST, timeout_s=2)
    message = str(info.value)
    assert f"{base}/realtime/client_secrets does not exist (HTTP 404)" in message
    assert "a Realtime API?" in message and "ends in /v1" not in message


async def test_offer_rejected_quotes_server_message(scripted: tuple[Scripted, str]) -> None:
    s, base = scripted
    s.reply = json_error(400, "Invalid SDP: expected v=0")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.RequestRejected, match="Invalid SDP: expected v=0"):
            await post_offer(http, base, EK, "garbage", timeout_s=2)


async def test_offer_answer_that_is_not_sdp(scripted: tuple[Scripted, str]) -> None:
    s, base = scripted
    s.reply = web.Response(status=201, text="<html>proxy page</html>")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.ServerUnavailable, match="not SDP"):
            await post_offer(http, base, EK, "v=0", timeout_s=2)


async def test_timeout(scripted: tuple[Scripted, str]) -> None:
    s, base = scripted
    s.delay = 5.0
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.SignalingTimeout, match=r"within 0\.2 s") as info:
            await create_client_secret(http, base, KEY, REQUEST, timeout_s=0.2)
    # The setting named exists (there is no --http-timeout flag).
    assert "VOICECOACH_HTTP_TIMEOUT" in str(info.value) and "--http-timeout" not in str(info.value)
    assert isinstance(info.value.__cause__, TimeoutError)  # translated with `from exc`: --debug shows the cause


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on that port now.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.Unreachable, match=re.escape(f"127.0.0.1:{port}")):
            await create_client_secret(http, f"http://127.0.0.1:{port}/v1", KEY, REQUEST, timeout_s=2)


class FailingResolver(aiohttp.abc.AbstractResolver):
    """Fails every lookup like a resolver that knows no such host, without sending any packet."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[Any]:
        raise OSError(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        return None


async def test_dns_failure() -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=FailingResolver())) as http:
        with pytest.raises(errors.Unreachable, match=r"cannot resolve 'api\.example\.invalid'"):
            await create_client_secret(http, "https://api.example.invalid/v1", KEY, REQUEST, timeout_s=2)


def test_auth_and_quota_errors_are_not_retryable() -> None:
    assert not errors.AuthError("x").retryable
    assert not errors.RateLimitError("x").retryable
    assert errors.ServerUnavailable("x").retryable
    assert errors.Unreachable("x").retryable
