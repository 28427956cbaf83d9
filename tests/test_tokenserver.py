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
from voicecoach.cli import main
from voicecoach.config import Settings, load_settings
from voicecoach.tokenserver import TOKEN_PATH, TokenBuckets, create_token_app, run_token_server, token_secret
from voicecoach.tokenserver_settings import TokenServerSettings
from voicecoach.transport.token_client import (
    RETRY_MAX_WAIT_S,
    RETRY_TRIES,
    fetch_from_token_server,
    retry_after_seconds,
)

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


def settings_for(base_url: str, **limits: Any) -> Settings:
    return Settings(
        api_key=SecretStr(API_KEY), base_url=base_url, http_timeout=5, token_server=TokenServerSettings(**limits)
    )


StartServer = Callable[..., Awaitable[str]]


@pytest.fixture
async def token_server(upstream: tuple[Upstream, str]) -> AsyncIterator[StartServer]:
    """Starts token servers (TokenServerSettings as keywords) and returns each one's token URL; all are cleaned up."""
    runners: list[web.AppRunner] = []

    async def start(base_url: str | None = None, **limits: Any) -> str:
        app = create_token_app(settings_for(base_url or upstream[1], **limits), SecretStr(SECRET))
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


async def test_client_maps_401_to_auth_error(token_server: StartServer) -> None:
    url = await token_server()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.AuthError) as info:
            await fetch_from_token_server(http, url, SecretStr("not-the-secret-123456"), timeout_s=5)
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
        # Retry-After (6 s) is longer than the client waits: it fails at once, saying why.
        with pytest.raises(errors.RateLimitError, match="HTTP 429") as info:
            await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5, max_wait_s=1)
    assert "asks to wait 6 s, longer than the 1 s" in str(info.value)
    assert "billing" not in str(info.value) and "plan" not in str(info.value)


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
            await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5, tries=1)
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
            await fetch_from_token_server(
                http, f"http://127.0.0.1:{closed_port()}/v1/token", SecretStr(SECRET), timeout_s=5
            )
        with pytest.raises(errors.ConfigError, match="--token-url"):
            await fetch_from_token_server(http, "127.0.0.1:8766/v1/token", SecretStr(SECRET), timeout_s=5)


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
                await fetch_from_token_server(http, f"{url}/slow", SecretStr(SECRET), timeout_s=0.2)
            with pytest.raises(errors.ServerUnavailable, match="no usable 'value'"):
                await fetch_from_token_server(http, f"{url}/html", SecretStr(SECRET), timeout_s=5)
    finally:
        release.set()
        await runner.cleanup()


@pytest.mark.parametrize(("value", "words"), [(None, "is not set"), ("short-secret", "too short")])
def test_secret_is_required_and_long_enough(value: str | None, words: str) -> None:
    environ = {} if value is None else {"VOICECOACH_TOKEN_SECRET": value}
    with pytest.raises(errors.ConfigError, match=words) as info:
        token_secret(load_settings(environ=environ))
    assert "VOICECOACH_TOKEN_SECRET" in str(info.value) and "short-secret" not in str(info.value)
    assert token_secret(load_settings(environ={"VOICECOACH_TOKEN_SECRET": SECRET})).get_secret_value() == SECRET


def test_server_refuses_to_start_without_secret_or_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICECOACH_TOKEN_SECRET", raising=False)
    with pytest.raises(errors.ConfigError, match="VOICECOACH_TOKEN_SECRET"):
        run_token_server(settings_for("http://127.0.0.1:1/v1", port=0))
    with pytest.raises(errors.ConfigError, match="OPENAI_API_KEY"):
        create_token_app(Settings(api_key=None), SecretStr(SECRET))


async def test_run_token_server_prints_its_url_serves_and_stops_on_sigterm(upstream: tuple[Upstream, str]) -> None:
    child = (
        "import sys\n"
        "from voicecoach.config import load_settings\n"
        "from voicecoach.tokenserver import run_token_server\n"
        f"flags = {{'api_key': {API_KEY!r}, 'base_url': {upstream[1]!r}, 'token_server': {{'port': 0}}}}\n"
        "settings = load_settings(None, flags)  # the secret comes from the environment\n"
        "sys.exit(run_token_server(settings))\n"
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


# --- the client's 429 retry, the missing secret, and the limits as settings (issue 10, item 9) ------------------


class ScriptedTokenServer:
    """A token server whose replies the test lists (the last one repeats); it records when each request came."""

    def __init__(self, *replies: tuple[int, dict[str, str]]) -> None:
        self.replies = list(replies)
        self.times: list[float] = []
        self.bearers: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.times.append(asyncio.get_running_loop().time())
        self.bearers.append(request.headers.get("Authorization", ""))
        status, headers = self.replies[min(len(self.times), len(self.replies)) - 1]
        if status == 200:
            return web.json_response({"value": EK, "expires_at": 1}, headers=headers)
        error = {"message": "too many token requests from this address", "type": "x", "code": "rate_limited"}
        return web.json_response({"error": error}, status=status, headers=headers)


@pytest.fixture
async def scripted_token_server() -> AsyncIterator[Callable[..., Awaitable[tuple[ScriptedTokenServer, str]]]]:
    runners: list[web.AppRunner] = []

    async def start(*replies: tuple[int, dict[str, str]]) -> tuple[ScriptedTokenServer, str]:
        fake = ScriptedTokenServer(*replies)
        app = web.Application()
        app.router.add_post(TOKEN_PATH, fake.handle)
        runner, url = await serve(app)
        runners.append(runner)
        return fake, url + TOKEN_PATH

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_client_waits_out_retry_after_then_succeeds(scripted_token_server: Any) -> None:
    fake, url = await scripted_token_server((429, {"Retry-After": "0.2"}), (200, {}))
    notices: list[str] = []
    async with aiohttp.ClientSession() as http:
        minted = await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5, on_retry=notices.append)
    assert minted.value.get_secret_value() == EK
    assert len(fake.times) == 2
    assert fake.times[1] - fake.times[0] >= 0.19  # it waited what it was told (a lower bound, not a budget)
    [notice] = notices
    assert "HTTP 429" in notice and "in 0.2 s" in notice and "2/3" in notice
    assert SECRET not in notice


async def test_client_retries_the_real_token_server_after_its_retry_after(
    upstream: tuple[Upstream, str], token_server: StartServer
) -> None:
    url = await token_server(rate_per_minute=60, burst=1)  # one key per second
    notices: list[str] = []
    async with aiohttp.ClientSession() as http:
        await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5)
        minted = await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5, on_retry=notices.append)
    assert minted.value.get_secret_value() == EK
    assert len(upstream[0].seen) == 2  # the 429 never reached the upstream
    assert len(notices) == 1 and "in 1 s" in notices[0]


async def test_a_429_forever_gives_one_line_after_bounded_tries(scripted_token_server: Any) -> None:
    fake, url = await scripted_token_server((429, {"Retry-After": "0.05"}))
    notices: list[str] = []
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.RateLimitError) as info:
            await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5, on_retry=notices.append)
    message = str(info.value)
    assert len(fake.times) == 3 and len(notices) == 2  # 3 tries in all: the default bound
    assert "still refused after 3 tries (HTTP 429)" in message and "--rate-per-minute" in message
    assert "billing" not in message and "plan" not in message and "quota" not in message
    assert "\n" not in message and not info.value.retryable


async def test_a_429_without_retry_after_is_not_retried(scripted_token_server: Any) -> None:
    fake, url = await scripted_token_server((429, {}), (200, {}))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.RateLimitError, match="is rate limiting"):
            await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5)
    assert len(fake.times) == 1


@pytest.mark.parametrize("secret", [None, SecretStr("")])
async def test_missing_token_secret_is_said_before_any_request(
    scripted_token_server: Any, secret: SecretStr | None
) -> None:
    fake, url = await scripted_token_server((200, {}))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.ConfigError) as info:
            await fetch_from_token_server(http, url, secret, timeout_s=5)
    assert fake.times == []  # nothing was sent
    assert info.value.exit_code == 2
    assert "VOICECOACH_TOKEN_SECRET" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0.2", 0.2),
        ("6", 6.0),
        (" 3 ", 3.0),
        ("Thu, 01 Jan 1970 00:00:10 GMT", 5.0),
        ("Thu, 01 Jan 1970 00:00:01 GMT", 0),
    ],
)
def test_retry_after_seconds(value: str, seconds: float) -> None:
    assert retry_after_seconds(value, now=5.0) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "-1", "nan", "inf"])
def test_retry_after_seconds_ignores_what_it_cannot_use(value: str | None) -> None:
    assert retry_after_seconds(value, now=5.0) is None


async def limited_app_statuses(settings: Settings, upstream_url: str) -> tuple[list[int], str]:
    """Three requests to a token server built from ``settings``: their statuses and the last Retry-After."""
    settings = settings.model_copy(update={"api_key": SecretStr(API_KEY), "base_url": upstream_url})
    runner, url = await serve(create_token_app(settings, SecretStr(SECRET)))
    try:
        replies = [await post(url + TOKEN_PATH, SECRET) for _ in range(3)]
    finally:
        await runner.cleanup()
    return [status for status, _, _ in replies], replies[-1][1].get("Retry-After", "")


async def test_limits_come_from_the_config_file(upstream: tuple[Upstream, str], tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[token_server]\nrate_per_minute = 2\nburst = 2\n")
    statuses, retry_after = await limited_app_statuses(load_settings(config, environ={}), upstream[1])
    assert statuses == [200, 200, 429] and retry_after == "30"


async def test_limits_come_from_the_environment(upstream: tuple[Upstream, str]) -> None:
    environ = {"VOICECOACH_TOKEN_SERVER__RATE_PER_MINUTE": "2", "VOICECOACH_TOKEN_SERVER__BURST": "2"}
    statuses, retry_after = await limited_app_statuses(load_settings(environ=environ), upstream[1])
    assert statuses == [200, 200, 429] and retry_after == "30"


def test_default_limits_let_three_through() -> None:
    limits = TokenServerSettings()
    assert (limits.rate_per_minute, limits.burst, limits.host, limits.port) == (10, 3, "127.0.0.1", 8766)


async def start_cli(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicecoach",
        *args,
        env={**os.environ, "PYTHONPATH": str(SRC), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_cli_flags_set_the_limits(upstream: tuple[Upstream, str]) -> None:
    env = {"OPENAI_API_KEY": API_KEY, "VOICECOACH_TOKEN_SECRET": SECRET}
    proc = await start_cli(
        "token-server", "--port", "0", "--base-url", upstream[1], "--rate-per-minute", "2", "--burst", "2", env=env
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            url = (await proc.stdout.readline()).decode().split()[-1]
            limits = (await proc.stdout.readline()).decode()
        assert "2 keys/min, burst 2" in limits
        statuses = [(await post(url, SECRET))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err
        assert not any(s.encode() in out + err for s in SECRETS)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--burst", "0"], {}, "argument --burst: must be"),
        (["--rate-per-minute", "-1"], {}, "argument --rate-per-minute: must be"),
        (["--rate-per-minute", "nan"], {}, "argument --rate-per-minute: must be"),
        (["--port", "70000"], {}, "argument --port: must be"),
        ([], {"VOICECOACH_TOKEN_SERVER__BURST": "0"}, "token_server.burst from environment variable"),
        ([], {"VOICECOACH_TOKEN_SERVER__RATE_PER_MINUTE": "often"}, "VOICECOACH_TOKEN_SERVER__RATE_PER_MINUTE"),
    ],
)
async def test_cli_bad_limits_exit_2_with_one_line_naming_the_source(
    args: list[str], env: dict[str, str], words: str
) -> None:
    base = {"OPENAI_API_KEY": API_KEY, "VOICECOACH_TOKEN_SECRET": SECRET}
    proc = await start_cli("token-server", "--port", "0", *args, env={**base, **env})
    try:
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 2, (out, err)
    [line] = err.decode().strip().splitlines()
    assert words in line, line
    assert out == b""


def test_help_lists_what_the_token_server_needs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token-server", "--help"]) == 0
    text = capsys.readouterr().out
    for needed in ("OPENAI_API_KEY", "VOICECOACH_TOKEN_SECRET", "--rate-per-minute", "--burst", "--base-url"):
        assert needed in text
    # The defaults shown are the settings' own, and so is the client's retry bound.
    limits = TokenServerSettings()
    assert f"(default: {limits.rate_per_minute:g})" in text and f"(default: {limits.burst})" in text
    assert f"(default: {limits.host})" in text and f"(default: {limits.port})" in text
    assert f"up to {RETRY_MAX_WAIT_S:g} s, {RETRY_TRIES} tries" in " ".join(text.split())


def test_a_taken_port_is_one_line_with_the_cause_kept() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        settings = settings_for("http://127.0.0.1:1/v1", port=port).model_copy(
            update={"token_secret": SecretStr(SECRET)}
        )
        with pytest.raises(errors.ConfigError, match=f"cannot listen on 127.0.0.1:{port}") as info:
            run_token_server(settings)
    assert "--port" in str(info.value) and isinstance(info.value.__cause__, OSError)
