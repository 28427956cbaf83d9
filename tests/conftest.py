"""Fixtures for every test.

Every test is hermetic and stays on loopback: no user config file, no user data dir, no inherited
``VOICECOACH_*`` / ``OPENAI_*`` settings, and aiortc's ICE host candidates pinned to 127.0.0.1 (aioice
otherwise offers every other interface of the machine).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from voicecoach.server import RealtimeServer, Scenario, ServerConfig
from voicecoach.transport.ice import pin_host_addresses


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("VOICECOACH_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    monkeypatch.setenv("VOICECOACH_DATA_DIR", str(tmp_path / "data"))
    # The call's audio is captured only where a test asks for it (--them-device / --them-file): a sound server
    # that happens to run (another test's private PulseAudio) must not add a second link to every run.
    monkeypatch.setenv("VOICECOACH_THEM_DEVICE", "none")
    # Each test's runs put their control socket (voicecoach ctl) in a runtime directory of their own, not in the
    # shared /tmp/voicecoach-<uid>; short, for the 107-byte limit on a socket's path.
    runtime = tempfile.mkdtemp(prefix="vc-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    pin_host_addresses(["127.0.0.1"])
    yield
    shutil.rmtree(runtime, ignore_errors=True)


ALL_TRANSPORTS = ("webrtc", "websocket")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that use ``transport`` run once per transport, or on those ``@pytest.mark.transports(...)`` names."""
    if "transport" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("transports")
        metafunc.parametrize("transport", marker.args if marker else ALL_TRANSPORTS)


@pytest.fixture
def over_transport(transport: str, hermetic_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The run's transport for this test, through the environment: in-process runners and the CLI alike."""
    monkeypatch.setenv("VOICECOACH_TRANSPORT", transport)
    return transport


@pytest.fixture
def server_defaults() -> dict[str, Any]:
    """ServerConfig fields every ``server_factory`` server gets unless the test says otherwise.

    The deterministic synthetic voice: tests must not depend on espeak-ng being installed.
    """
    return {"voice": "synth"}


@pytest.fixture
async def server_factory(server_defaults: dict[str, Any]) -> AsyncIterator[Callable[..., Any]]:
    """Start local Realtime servers (scenario lines, the other side's lines, then ServerConfig fields); each is
    stopped after the test."""
    servers: list[RealtimeServer] = []

    async def make(
        utterances: Sequence[str] = (),
        responses: Sequence[str] = (),
        *,
        them_utterances: Sequence[str] = (),
        **config: Any,
    ) -> RealtimeServer:
        scenario = Scenario(
            utterances=list(utterances), responses=list(responses), them_utterances=list(them_utterances)
        )
        server = RealtimeServer(ServerConfig(scenario=scenario, **{**server_defaults, **config}))
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()
