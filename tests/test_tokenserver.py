"""The token server and its client, against a local fake of ``/v1/realtime/client_secrets`` on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from voicecoach import errors
from voicecoach.config import Settings
from voicecoach.tokenserver import (
    TOKEN_PATH,
    TokenBuckets,
    create_token_app,
    run_token_server,
    token_secret_from_env,
)
from voicecoach.transport.token_client import fetch_from_token_server

SRC = Path(__file__).resolve().parents[1] / "src"
API_KEY = "sk-proj-upstreamKEY0123456789abcdef"
SECRET = "tokensrv-SECRET-0123456789abcdef"
EK = "ek_68af296e8e408191a1120ab6383263c2"
SECRETS = (API_KEY, SECRET, EK)


class Upstream:
    """Imitates POST /v1/realtime/client_secrets; the test picks the reply and reads what was asked."""

    def __init__(self) -> None:
        self.status = 200
        self.body: dict[str, Any] = {"value": EK, "expires_at": 1767233035, "session": {"type": "realtime"}}
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.headers.get("Authorization", ""), await request.json()))
        return web.json_response(self.body, status=self.status)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    fake = Upstream()
    app = web.Application()
    app.router.add_post("/v1/realtime/client_secrets", fake.handle)
    runner, url = await serve(app)
    try:
        yield fake, f"{url}/v1"
    finally:
        await runner.cleanup()


def settings_for(base_url: str) -> Settings:
    return Settings(api_key=SecretStr(API_KEY), base_url=base_url, http_timeout=5)


StartServer = Callable[..., Awaitable[str]]


@pytest.fixture
async def token_server(upstream: tuple[Upstream, str]) -> AsyncIterator[StartServer]:
    """Starts token servers (options as keywords) and returns each one's token URL; all are cleaned up."""
    runners: list[web.AppRunner] = []

    async def start(base_url: str | None = None, **options: Any) -> str:
        app = create_token_app(settings_for(base_url or upstream[1]), SecretStr(SECRET), **options)
        runner, url = await serve(app)
        runners.append(runner)
        return url + TOKEN_PATH

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()


async def post(url: str, bearer: str | None) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.text()


def assert_json_error(body: str, code: str) -> str:
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "code"}
    assert error["code"] == code
    assert "\n" not in error["message"]
    return str(error["message"])


async def test_client_gets_an_ek_through_the_token_server(
    upstream: tuple[Upstream, str], token_server: StartServer
) -> None:
    fake, _ = upstream
    url = await token_server()
    async with aiohttp.ClientSession() as http:
        minted = await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5)
    assert minted.value.get_secret_value() == EK
    assert minted.expires_at == 1767233035
    [(authorization, body)] = fake.seen
    assert authorization == f"Bearer {API_KEY}"  # the real key goes upstream, never the shared secret
    assert body["session"]["type"] == "realtime" and body["session"]["model"] == "gpt-realtime-1.5"
    assert body["session"]["audio"]["input"]["turn_detection"]["create_response"] is False
    assert body["expires_after"] == {"anchor": "created_at", "seconds": 600}


async def test_success_body_is_value_and_expiry_only(token_server: StartServer) -> None:
    status, headers, body = await post(await token_server(), SECRET)
    assert status == 200
    assert json.loads(body) == {"value": EK, "expires_at": 1767233035}
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer wrong-secret-0123456789", f"Basic {SECRET}", f"Bearer {SECRET}x", "Bearer é-non-ascii"],
)
async def test_bearer_is_required(
    upstream: tuple[Upstream, str], token_server: StartServer, authorization: str | None
) -> None:
    url = await token_server()
    headers = {} if authorization is None else {"Authorization": authorization}
    async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as resp:
        status, body, challenge = resp.status, await resp.text(), resp.headers.get("WWW-Authenticate")
    assert status == 401
    assert "VOICECOACH_TOKEN_SECRET" in assert_json_error(body, "invalid_token_secret")
    assert challenge is not None and challenge.startswith("Bearer")
    assert upstream[0].seen == []  # refused before any upstream call


@pytest.mark.parametrize("secret", [None, SecretStr("not-the-secret-123456")])
async def test_client_maps_401_to_auth_error(token_server: StartServer, secret: SecretStr | None) -> None:
    url = await token_server()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.AuthError) as info:
            await fetch_from_token_server(http, url, secret, timeout_s=5)
    assert "HTTP 401" in str(info.value) and "VOICECOACH_TOKEN_SECRET" in str(info.value)
    assert not info.value.retryable


async def test_rate_limit_holds_burst_then_429_with_retry_after(
    upstream: tuple[Upstream, str], token_server: StartServer
) -> None:
    url = await token_server(rate_per_minute=10, burst=3)
    statuses = [(await post(url, SECRET))[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    status, headers, body = await post(url, SECRET)
    assert status == 429
    assert int(headers["Retry-After"]) == 6  # one token per 6 s at 10/min
    assert "retry in 6 s" in assert_json_error(body, "rate_limited")
    assert len(upstream[0].seen) == 3
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.RateLimitError, match="HTTP 429"):
            await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5)


async def test_rate_limit_also_slows_secret_guessing(token_server: StartServer) -> None:
    url = await token_server(rate_per_minute=1, burst=2)
    assert [(await post(url, "guess-0123456789abcdef"))[0] for _ in range(3)] == [401, 401, 429]
    assert (await post(url, SECRET))[0] == 429  # even the right secret waits: the bucket is per address


def test_token_buckets_refill_and_keep_addresses_apart() -> None:
    buckets = TokenBuckets(rate_per_minute=10, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(6.0)
    assert buckets.take("b", 0.0) == 0.0  # another address has its own bucket
    assert buckets.take("a", 3.0) == pytest.approx(3.0)
    assert buckets.take("a", 6.0) == 0.0
    assert buckets.take("a", 6.0) > 0
    assert [buckets.take("a", 600.0) for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refills only up to the burst


def test_token_buckets_memory_is_bounded() -> None:
    buckets = TokenBuckets(rate_per_minute=60, burst=1, max_keys=10)
    for n in range(100):
        buckets.take(f"10.0.0.{n}", 0.0)
    assert len(buckets._buckets) <= 10
    assert buckets.take("10.0.0.99", 0.0) > 0  # the most recent address is still limited


@pytest.mark.parametrize(("rate", "burst"), [(0, 3), (10, 0)])
def test_token_buckets_refuse_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(errors.ConfigError):
        TokenBuckets(rate, burst)


async def test_upstream_401_becomes_502_with_a_clear_message(
    upstream: tuple[Upstream, str], token_server: StartServer
) -> None:
    fake, _ = upstream
    fake.status = 401
    fake.body = {"error": {"message": f"Incorrect API key provided: {API_KEY}.", "type": "invalid_request_error"}}
    url = await token_server()
    status, _, body = await post(url, SECRET)
    assert status == 502
    message = assert_json_error(body, "upstream_auth_failed")
    assert "upstream" in message and "HTTP 401" in message and "OPENAI_API_KEY" in message
    assert API_KEY not in body and "upstreamKEY" not in body
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.ServerUnavailable) as info:
            await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5)
    assert "HTTP 502" in str(info.value) and "OPENAI_API_KEY" in str(info.value)


async def test_unreachable_upstream_becomes_502(token_server: StartServer) -> None:
    url = await token_server(base_url=f"http://127.0.0.1:{closed_port()}/v1")
    status, _, body = await post(url, SECRET)
    assert status == 502
    assert "cannot connect" in assert_json_error(body, "upstream_unreachable")


async def test_no_secret_in_logs_or_error_bodies(
    upstream: tuple[Upstream, str], token_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake, _ = upstream
    url = await token_server(burst=5)
    replies = [await post(url, SECRET)]  # success
    replies += [await post(url, None), await post(url, SECRET[:-1])]  # 401s
    fake.status, fake.body = 401, {"error": {"message": f"bad key {API_KEY} / {EK}"}}
    replies.append(await post(url, SECRET))  # 502
    replies += [await post(url, SECRET) for _ in range(2)]  # 502, then 429
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.RateLimitError) as info:
            await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5)
    assert [status for status, _, _ in replies] == [200, 401, 401, 502, 502, 429]
    assert EK in replies[0][2]  # the one place an ek_ may appear
    for _, headers, body in replies[1:]:
        assert not any(s in body or s in str(headers) for s in SECRETS)
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "token request from 127.0.0.1" in logged  # the scan ran over real log lines
    assert not any(s in logged for s in SECRETS)
    assert not any(s in str(info.value) for s in SECRETS)


async def test_client_error_mapping_without_a_token_server() -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.Unreachable, match="--token-url"):
            await fetch_from_token_server(http, f"http://127.0.0.1:{closed_port()}/v1/token", None, timeout_s=5)
        with pytest.raises(errors.ConfigError, match="--token-url"):
            await fetch_from_token_server(http, "127.0.0.1:8766/v1/token", None, timeout_s=5)


async def test_client_times_out_and_rejects_a_non_token_server() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>")

    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_post("/html", not_json)
    runner, url = await serve(app)
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(errors.SignalingTimeout, match=r"within 0\.2 s"):
                await fetch_from_token_server(http, f"{url}/slow", None, timeout_s=0.2)
            with pytest.raises(errors.ServerUnavailable, match="no usable 'value'"):
                await fetch_from_token_server(http, f"{url}/html", None, timeout_s=5)
    finally:
        release.set()
        await runner.cleanup()


@pytest.mark.parametrize(("value", "words"), [(None, "is not set"), ("short-secret", "too short")])
def test_secret_is_required_and_long_enough(value: str | None, words: str) -> None:
    environ = {} if value is None else {"VOICECOACH_TOKEN_SECRET": value}
    with pytest.raises(errors.ConfigError, match=words) as info:
        token_secret_from_env(environ)
    assert "VOICECOACH_TOKEN_SECRET" in str(info.value) and "short-secret" not in str(info.value)
    assert token_secret_from_env({"VOICECOACH_TOKEN_SECRET": SECRET}).get_secret_value() == SECRET


def test_server_refuses_to_start_without_secret_or_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICECOACH_TOKEN_SECRET", raising=False)
    with pytest.raises(errors.ConfigError, match="VOICECOACH_TOKEN_SECRET"):
        run_token_server(settings_for("http://127.0.0.1:1/v1"), "127.0.0.1", 0)
    with pytest.raises(errors.ConfigError, match="OPENAI_API_KEY"):
        create_token_app(Settings(api_key=None), SecretStr(SECRET))


async def test_run_token_server_prints_its_url_serves_and_stops_on_sigterm(upstream: tuple[Upstream, str]) -> None:
    child = (
        "import sys\n"
        "from pydantic import SecretStr\n"
        "from voicecoach.config import Settings\n"
        "from voicecoach.tokenserver import run_token_server\n"
        f"settings = Settings(api_key=SecretStr({API_KEY!r}), base_url={upstream[1]!r})\n"
        "sys.exit(run_token_server(settings, '127.0.0.1', 0))\n"
    )
    env = {**os.environ, "VOICECOACH_TOKEN_SECRET": SECRET, "PYTHONPATH": str(SRC)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", child, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]  # PIPE was requested
        assert line.startswith("voicecoach token server listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        assert url.endswith(TOKEN_PATH)
        async with aiohttp.ClientSession() as http:
            minted = await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5)
        assert minted.value.get_secret_value() == EK
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err
        assert not any(s.encode() in out + err for s in SECRETS)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
