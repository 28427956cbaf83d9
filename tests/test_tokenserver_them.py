"""The token server mints keys for the other side's transcription-only session too (``--token-url``)."""

from __future__ import annotations

from typing import Any

import aiohttp
from pydantic import SecretStr

from test_tokenserver import EK, SECRET, StartServer, Upstream, assert_json_error, token_server, upstream
from voicecoach.config import Settings
from voicecoach.session_config import build_transcription_session
from voicecoach.transport.credentials import TokenServer, obtain_client_secret
from voicecoach.transport.token_client import fetch_from_token_server

__all__ = ["token_server", "upstream"]  # fixtures, used by name


async def test_a_transcription_key_is_minted_for_a_transcription_session(
    upstream: tuple[Upstream, str], token_server: StartServer
) -> None:
    fake, _ = upstream
    url = await token_server()
    async with aiohttp.ClientSession() as http:
        realtime = await fetch_from_token_server(http, url, SecretStr(SECRET), timeout_s=5)
        source = TokenServer(url, SecretStr(SECRET))
        them = await obtain_client_secret(
            http, source, session=build_transcription_session(Settings()), ttl_seconds=600, timeout_s=5
        )
    assert realtime.value.get_secret_value() == them.value.get_secret_value() == EK
    [(_, main_body), (_, them_body)] = fake.seen
    assert main_body["session"]["type"] == "realtime" and "model" in main_body["session"]
    session = them_body["session"]
    assert session["type"] == "transcription" and "model" not in session
    assert session["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
    assert set(session["audio"]) == {"input"}


async def test_an_unknown_session_type_is_refused_without_asking_upstream(
    upstream: tuple[Upstream, str], token_server: StartServer
) -> None:
    fake, _ = upstream
    url = await token_server()
    headers = {"Authorization": f"Bearer {SECRET}"}
    bodies: list[Any] = [{"session_type": "translation"}, "not json", [1, 2]]
    async with aiohttp.ClientSession() as http:
        for body in bodies:
            kwargs: dict[str, Any] = {"data": body} if isinstance(body, str) else {"json": body}
            async with http.post(url, headers=headers, **kwargs) as resp:
                assert resp.status == 400, body
                assert_json_error(await resp.text(), "invalid_session_type")
    assert fake.seen == []
