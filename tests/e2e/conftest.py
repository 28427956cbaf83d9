"""End-to-end fixtures: the real client (SessionRunner) against the local Realtime server over real aiortc.

Everything binds and connects on 127.0.0.1 only (ICE host candidates are pinned to loopback).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from voicecoach.server import RealtimeServer, Scenario, ServerConfig
from voicecoach.transport.ice import pin_host_addresses


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user config, no user data dir, no inherited VOICECOACH_* or OPENAI_* settings."""
    for name in list(os.environ):
        if name.startswith(("VOICECOACH_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("VOICECOACH_DATA_DIR", str(tmp_path / "data"))
    pin_host_addresses(["127.0.0.1"])


@pytest.fixture
async def server_factory() -> AsyncIterator[Callable[..., Any]]:
    servers: list[RealtimeServer] = []

    async def make(utterances: Sequence[str] = (), responses: Sequence[str] = (), **config: Any) -> RealtimeServer:
        scenario = Scenario(utterances=list(utterances), responses=list(responses))
        server = RealtimeServer(ServerConfig(scenario=scenario, voice="synth", **config))
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()
