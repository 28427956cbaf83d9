"""End-to-end tests run once per transport (WebRTC, the WebSocket): the same behaviour over both."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _each_transport(over_transport: str) -> str:
    return over_transport
