"""Fault-injection fixtures: the real client against a local Realtime server that misbehaves on purpose.

Everything binds and connects on 127.0.0.1 only (ICE host candidates are pinned to loopback). The figures the
tests measure (reconnect times, items lost and duplicated) are printed in pytest's terminal summary.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The e2e helpers (meeting audio, settings for a local server) are shared: `from e2e_harness import ...`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from faults_harness import FIGURES


@pytest.fixture(autouse=True)
def _each_transport(over_transport: str) -> str:
    """Every fault test runs over WebRTC and over the WebSocket, unless it is marked for some of them."""
    return over_transport


@pytest.fixture
def server_defaults() -> dict[str, Any]:
    """Scenarios span calls here: a client that reconnects mid-meeting goes on getting the next lines, as it
    would from the real API, so a transcript is the same whether or not a reconnect happened in the middle."""
    return {"voice": "synth", "scenario_spans_calls": True}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault-injection figures")
    for line in FIGURES:
        terminalreporter.write_line(line)
