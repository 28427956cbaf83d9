"""Which transport a run's link uses, and which key it connects with: settings in, explicit arguments out.

This is the one place that reads :class:`~voicecoach.config.Settings` for the network; the transports and
:mod:`voicecoach.transport.credentials` take explicit arguments only.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from pydantic import SecretStr

from ..audio.base import FrameSource
from ..config import Settings
from ..session_config import build_session
from .base import Transport, TransportFactory
from .credentials import KeySource, key_source, obtain_client_secret
from .signaling import post_offer
from .webrtc import WebRtcTransport
from .websocket import WebSocketTransport, realtime_url


def transport_factory(http: aiohttp.ClientSession, settings: Settings) -> TransportFactory:
    """A factory of WebRTC transports whose SDP offer goes to ``{base_url}/realtime/calls``."""

    def make(source: FrameSource, key: SecretStr) -> Transport:
        async def exchange(offer: str) -> str:
            answer = await post_offer(http, settings.base_url, key, offer, settings.http_timeout)
            return answer.sdp

        return WebRtcTransport(source, exchange, ice_servers=settings.ice_servers)

    return make


def websocket_factory(http: aiohttp.ClientSession, settings: Settings) -> TransportFactory:
    """A factory of WebSocket transports to ``{base_url}/realtime?model=M`` (ws:// or wss://)."""
    url = realtime_url(settings.base_url, settings.model)

    def make(source: FrameSource, key: SecretStr) -> Transport:
        return WebSocketTransport(source, http, url, key)

    return make


def key_source_for(settings: Settings) -> KeySource:
    """Where this run's keys come from; raises a one-line error at start (nothing sent) when unusable."""
    s = settings
    return key_source(base_url=s.base_url, api_key=s.api_key, token_url=s.token_url, token_secret=s.token_secret)


async def credential(
    http: aiohttp.ClientSession, settings: Settings, source: KeySource, on_retry: Callable[[str], None]
) -> SecretStr:
    """The short-lived key one link connects with (minted here, or by the token server)."""
    s = settings
    secret = await obtain_client_secret(
        http,
        source,
        session=build_session(s, with_model=True),
        ttl_seconds=s.token_ttl_seconds,
        timeout_s=s.http_timeout,
        on_retry=on_retry,
    )
    return secret.value
