"""End-to-end fixtures: the real client (SessionRunner) against the local Realtime server over real aiortc.

Everything binds and connects on 127.0.0.1 only (ICE host candidates are pinned to loopback).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from voicecoach.server import RealtimeServer, Scenario, ServerConfig


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
