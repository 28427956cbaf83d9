"""The local backend's settings: the loopback rule for the language model's URL, and defaults kept in step."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from tests.local.chat_stub import ChatStub, StubConfig

from voicecoach import config as user_config
from voicecoach.errors import ConfigError
from voicecoach.local.errors import LocalModelMissing
from voicecoach.local.stt import BUNDLED_MODEL
from voicecoach.server import local_backend, local_config
from voicecoach.server.local_backend import LocalBackend
from voicecoach.server.local_config import LocalConfig, loopback_only


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend makes the process offline for the model hub (never a download); undone after the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_the_user_settings_defaults_are_the_backends() -> None:
    # config.py writes them out (importing the server would slow every command); they must not drift apart.
    assert user_config.LOCAL_STT_MODEL == local_config.DEFAULT_STT_MODEL == BUNDLED_MODEL
    assert user_config.LOCAL_LLM_URL == local_config.DEFAULT_LLM_URL
    assert user_config.LOCAL_LLM_MODEL == local_config.DEFAULT_LLM_MODEL
    settings = user_config.Settings()
    assert (settings.local_stt_model, settings.local_llm_url, settings.local_llm_model) == (
        LocalConfig().stt_model,
        LocalConfig().llm_url,
        LocalConfig().llm_model,
    )


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:11434/v1", "http://127.8.9.10/v1", "http://[::1]:8080/v1", "https://localhost:1234/v1"]
)
def test_loopback_addresses_and_localhost_pass(url: str) -> None:
    loopback_only(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://10.1.2.3:11434/v1", "10.1.2.3"),
        ("http://[2001:db8::1]:8080/v1", "2001:db8::1"),
        ("http://0.0.0.0:11434/v1", "0.0.0.0"),  # "any address": not a promise that it stays here
        ("http://192.168.1.20/v1", "192.168.1.20"),
    ],
)
def test_any_other_address_is_refused_with_one_line(url: str, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        loopback_only(url)
    message = str(info.value)
    assert shown in message and "not on this machine" in message and "--allow-remote-llm" in message
    assert "\n" not in message and info.value.exit_code == 2


def fake_resolver(table: dict[str, list[str]]) -> Any:
    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in table[host]
        ]

    return getaddrinfo


def test_a_name_counts_as_local_only_when_every_address_it_has_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket, "getaddrinfo", fake_resolver({"llm.lan": ["127.0.0.1", "192.168.1.20"], "box": ["::1"]})
    )
    loopback_only("http://box:8080/v1")
    with pytest.raises(ConfigError, match=r"llm\.lan \(192\.168\.1\.20\) is not a loopback address"):
        loopback_only("http://llm.lan:8080/v1")
    with pytest.raises(ConfigError, match="cannot resolve 'gone'"):
        loopback_only("http://gone:8080/v1")


async def test_the_allowance_skips_only_the_loopback_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """With allow_remote_llm the rule is not applied; every other check still is (here: the speech model)."""

    def refuse(url: str, **kwargs: Any) -> None:
        raise ConfigError(f"refused {url}")

    monkeypatch.setattr(local_backend, "loopback_only", refuse)
    async with ChatStub(StubConfig(models=["m"])) as stub:
        strict = LocalBackend(LocalConfig(llm_url=stub.url, llm_model="m", stt_model="/nonexistent/model"))
        with pytest.raises(ConfigError, match="refused"):
            await strict.start()
        allowed = LocalBackend(
            LocalConfig(llm_url=stub.url, llm_model="m", stt_model="/nonexistent/model", allow_remote_llm=True)
        )
        with pytest.raises(LocalModelMissing):
            await allowed.start()
        await allowed.close()
