"""Where a link's key comes from (transport/credentials.py), against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from voicecoach import errors
from voicecoach.protocol.client_events import SessionConfig
from voicecoach.transport.credentials import (
    LOCAL_KEY_FOR_LOOPBACK,
    ApiKey,
    TokenServer,
    is_loopback_host,
    key_source,
    obtain_client_secret,
    resolve_api_key,
)

KEY = SecretStr("sk-proj-credentialsTEST0123456789")
SECRET = SecretStr("tokensrv-SECRET-0123456789abcdef")
SESSION = SessionConfig(model="gpt-realtime-1.5")


class Recorder:
    """Answers every POST with a key and remembers what was asked."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.seen.append((request.path, request.headers.get("Authorization", ""), body))
        return web.json_response({"value": "ek_from_" + request.path.strip("/").replace("/", "_"), "expires_at": 7})


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    app = web.Application()
    app.router.add_post("/v1/realtime/client_secrets", rec.handle)
    app.router.add_post("/v1/token", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield rec, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("api.openai.com", False),
        ("127.0.0.1.example.com", False),  # a name that only starts like a loopback address
        ("10.0.0.1", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_resolve_api_key() -> None:
    assert resolve_api_key(KEY, "https://api.openai.com/v1") is KEY
    assert resolve_api_key(KEY, "http://127.0.0.1:8765/v1") is KEY  # a real key is used even on loopback
    for local in ("http://127.0.0.1:8765/v1", "http://localhost:1/v1", "http://[::1]:8765/v1"):
        assert resolve_api_key(None, local).get_secret_value() == LOCAL_KEY_FOR_LOOPBACK
    for missing in (None, SecretStr("")):
        with pytest.raises(errors.AuthError, match="OPENAI_API_KEY") as info:
            resolve_api_key(missing, "https://api.openai.com/v1")
        assert "\n" not in str(info.value)
    # Looks local, is not: the placeholder must never go to another host.
    with pytest.raises(errors.AuthError):
        resolve_api_key(None, "http://127.0.0.1.example.com/v1")


def test_key_source_prefers_the_token_server() -> None:
    source = key_source(
        base_url="https://api.openai.com/v1",
        api_key=KEY,
        token_url="http://127.0.0.1:8766/v1/token",
        token_secret=SECRET,
    )
    assert source == TokenServer("http://127.0.0.1:8766/v1/token", SECRET)
    source = key_source(base_url="https://api.openai.com/v1", api_key=KEY, token_url=None, token_secret=SECRET)
    assert source == ApiKey("https://api.openai.com/v1", KEY)
    local = key_source(base_url="http://127.0.0.1:8765/v1", api_key=None, token_url="", token_secret=None)
    assert isinstance(local, ApiKey) and local.key.get_secret_value() == LOCAL_KEY_FOR_LOOPBACK


@pytest.mark.parametrize("secret", [None, SecretStr("")])
def test_key_source_without_the_token_secret_is_a_usage_error(secret: SecretStr | None) -> None:
    with pytest.raises(errors.ConfigError) as info:
        key_source(
            base_url="https://api.openai.com/v1", api_key=KEY, token_url="http://h/v1/token", token_secret=secret
        )
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "VOICECOACH_TOKEN_SECRET" in message and "--token-url" in message and "\n" not in message


def test_key_source_refuses_a_token_url_that_is_not_http() -> None:
    with pytest.raises(errors.ConfigError, match="--token-url must be an http"):
        key_source(base_url="https://x/v1", api_key=None, token_url="127.0.0.1:8766/v1/token", token_secret=SECRET)


def test_key_source_without_any_key_is_an_auth_error() -> None:
    with pytest.raises(errors.AuthError, match="OPENAI_API_KEY"):
        key_source(base_url="https://api.openai.com/v1", api_key=None, token_url=None, token_secret=None)


async def test_obtain_with_the_api_key_mints_a_client_secret(recorder: tuple[Recorder, str]) -> None:
    rec, url = recorder
    source = key_source(base_url=f"{url}/v1", api_key=KEY, token_url=None, token_secret=None)
    async with aiohttp.ClientSession() as http:
        secret = await obtain_client_secret(http, source, session=SESSION, ttl_seconds=120, timeout_s=5)
    assert secret.value.get_secret_value() == "ek_from_v1_realtime_client_secrets" and secret.expires_at == 7
    [(path, authorization, body)] = rec.seen
    assert path == "/v1/realtime/client_secrets" and authorization == f"Bearer {KEY.get_secret_value()}"
    assert body["expires_after"] == {"anchor": "created_at", "seconds": 120}
    assert body["session"]["model"] == "gpt-realtime-1.5"


async def test_obtain_from_the_token_server_sends_only_the_shared_secret(recorder: tuple[Recorder, str]) -> None:
    rec, url = recorder
    source = key_source(base_url=f"{url}/v1", api_key=KEY, token_url=f"{url}/v1/token", token_secret=SECRET)
    async with aiohttp.ClientSession() as http:
        secret = await obtain_client_secret(http, source, session=SESSION, ttl_seconds=120, timeout_s=5)
    assert secret.value.get_secret_value() == "ek_from_v1_token"
    [(path, authorization, _)] = rec.seen
    assert path == "/v1/token" and authorization == f"Bearer {SECRET.get_secret_value()}"  # never the API key


async def test_a_token_source_without_its_secret_sends_nothing(recorder: tuple[Recorder, str]) -> None:
    """Built by hand (past key_source's check): the boundary itself refuses before any request."""
    rec, url = recorder
    source = TokenServer(f"{url}/v1/token", SecretStr(""))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(errors.ConfigError, match="VOICECOACH_TOKEN_SECRET"):
            await obtain_client_secret(http, source, session=SESSION, ttl_seconds=120, timeout_s=5)
    assert rec.seen == []
