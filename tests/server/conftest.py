"""Fixtures for the local server's HTTP and WebRTC tests (127.0.0.1 only, no STUN)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from voicecoach.server import RealtimeServer, Scenario, ServerConfig
from voicecoach.transport.ice import pin_host_addresses

API_KEY = "sk-test-0123456789abcdef"
SCENARIO = Scenario(utterances=["Thanks for joining, everyone."], responses=["Ask about the budget."])


class Clock:
    """A settable wall clock (ephemeral key expiry without waiting)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def server(clock: Clock) -> AsyncIterator[RealtimeServer]:
    config = ServerConfig(api_key=API_KEY, voice="synth", session_max_seconds=600.0, scenario=SCENARIO)
    async with RealtimeServer(config, wall_clock=clock) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def offer() -> AsyncIterator[str]:
    """A real aiortc offer (audio sendrecv + the oai-events channel), from a peer closed after the test."""
    pin_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel("oai-events")
    await pc.setLocalDescription(await pc.createOffer())
    try:
        yield pc.localDescription.sdp
    finally:
        await pc.close()
