"""The WebRTC dead-link watchdog: a peer that stops sending (no RTP, no RTCP) is declared dead in the bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
from pydantic import SecretStr

from voicecoach.audio.files import PcmSource
from voicecoach.audio.frames import WIRE_RATE
from voicecoach.transport.signaling import post_offer
from voicecoach.transport.webrtc import WebRtcTransport

BOUND_S = 10.0


async def _dropped(data: bytes) -> None:
    """A network that loses every packet."""


async def test_a_silent_peer_is_declared_dead_and_a_live_one_is_not(
    server_factory: Callable[..., Awaitable[Any]],
) -> None:
    server = await server_factory()
    async with aiohttp.ClientSession() as http:

        async def exchange(offer: str) -> str:
            return (await post_offer(http, server.base_url, SecretStr("sk-local-test-key"), offer, 5.0)).sdp

        t = WebRtcTransport(PcmSource(np.zeros(0, np.int16), WIRE_RATE), exchange, dead_link_s=1.0)
        try:
            await t.connect(5.0)
            await asyncio.sleep(2.0)  # no audio from the coach: only RTCP (and silence RTP) flows
            assert not t.closed.is_set(), t.close_reason
            call = await server.wait_for_call()
            ice = call.peer_connection.getTransceivers()[0].sender.transport.transport
            ice._send = _dropped  # the peer goes silent: nothing it sends reaches us any more
            frozen = time.monotonic()
            async with asyncio.timeout(BOUND_S):
                await t.closed.wait()
            assert time.monotonic() - frozen == pytest.approx(1.0, abs=0.35)
            assert t.close_reason == "no RTP and no RTCP from the peer for 1 s"
        finally:
            await t.close()
