"""Fault-injection fixtures: the real client against a local Realtime server that misbehaves on purpose.

Everything binds and connects on 127.0.0.1 only (ICE host candidates are pinned to loopback). The figures the
tests measure (reconnect times, items lost and duplicated) are printed in pytest's terminal summary.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from voicecoach.server import RealtimeServer, Scenario, ServerConfig

# The e2e helpers (meeting audio, settings for a local server) are shared: `from e2e_harness import ...`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from faults_harness import FIGURES


@pytest.fixture
async def server_factory() -> AsyncIterator[Callable[..., Any]]:
    """Start local servers (scenario lines, then ServerConfig fields); each is stopped after the test.

    Scenarios span calls: a client that reconnects mid-meeting goes on getting the next lines, as it would from
    the real API, so a transcript is the same whether or not a reconnect happened in the middle.
    """
    servers: list[RealtimeServer] = []

    async def make(utterances: Sequence[str] = (), responses: Sequence[str] = (), **config: Any) -> RealtimeServer:
        scenario = Scenario(utterances=list(utterances), responses=list(responses))
        config.setdefault("scenario_spans_calls", True)
        server = RealtimeServer(ServerConfig(scenario=scenario, voice="synth", **config))
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault-injection figures")
    for line in FIGURES:
        terminalreporter.write_line(line)
