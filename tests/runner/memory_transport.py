"""An in-memory :class:`~voicecoach.transport.base.Transport` and the fake Realtime peer behind it.

For runner tests with no WebRTC and no sockets: the test plays the server. The peer answers
``session.update`` with ``session.updated`` by itself (every link needs that) and records every client
event; anything else the test pushes with :meth:`MemoryPeer.push`. ``refuse`` makes connects fail, ``hold``
makes them hang until released, and :meth:`MemoryPeer.drop` loses the current link.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

from pydantic import SecretStr

from voicecoach.audio.files import FrameSource
from voicecoach.errors import TransportError
from voicecoach.transport.base import AudioOut, until_closed


class MemoryUplink:
    def __init__(self) -> None:
        self.muted = False
        self.gate_open = False
        self.stopped = False

    def open_gate(self) -> None:
        self.gate_open = True

    def stop(self) -> None:
        self.stopped = True


class MemoryPeer:
    def __init__(self) -> None:
        self.links: list[MemoryTransport] = []
        self.received: list[dict[str, Any]] = []  # every client event, over every link
        self.refuse: TransportError | None = None  # connects fail with this while set
        self.hold = asyncio.Event()  # connects wait for this while set ... until cleared
        self.hold.set()
        self.connect_attempts = 0
        self.sent_event = asyncio.Event()  # set whenever a client event arrives

    def factory(self, source: FrameSource, key: SecretStr) -> MemoryTransport:
        return MemoryTransport(self, key)

    @property
    def current(self) -> MemoryTransport:
        return self.links[-1]

    def push(self, event: dict[str, Any]) -> None:
        """The server sends ``event`` on the current link."""
        self.current.inbox.put_nowait(json.dumps(event))

    def drop(self, reason: str = "peer vanished") -> None:
        self.current.lose(reason)

    def types(self) -> list[str]:
        return [e["type"] for e in self.received]

    async def wait_for(self, kind: str, count: int = 1, timeout: float = 5.0) -> dict[str, Any]:
        """The ``count``-th client event of ``kind`` (bounded wait)."""
        async with asyncio.timeout(timeout):
            while True:
                seen = [e for e in self.received if e["type"] == kind]
                if len(seen) >= count:
                    return seen[count - 1]
                self.sent_event.clear()
                await self.sent_event.wait()

    def _received(self, link: MemoryTransport, event: dict[str, Any]) -> None:
        self.received.append(event)
        self.sent_event.set()
        if event["type"] == "session.update":
            n = len(self.links)
            link.inbox.put_nowait(json.dumps({"type": "session.updated", "event_id": f"e{n}", "session": {}}))


class MemoryTransport:
    name = "memory"

    def __init__(self, peer: MemoryPeer, key: SecretStr) -> None:
        self.peer = peer
        self.key = key
        self.timings: dict[str, float] = {}
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.uplink = MemoryUplink()
        self.inbox: asyncio.Queue[str | bytes] = asyncio.Queue()

    async def connect(self, timeout_s: float) -> None:
        self.peer.connect_attempts += 1
        async with asyncio.timeout(timeout_s):
            await self.peer.hold.wait()
        if self.peer.refuse is not None:
            raise self.peer.refuse
        self.peer.links.append(self)
        self.timings = {"memory_ms": 0.0}

    def send(self, event: dict[str, Any]) -> str:
        if self.closed.is_set():
            raise TransportError(f"cannot send {event.get('type')}: the link is closed")
        self.peer._received(self, event)
        return json.dumps(event)

    def messages(self) -> AsyncGenerator[str | bytes, None]:
        return until_closed(self.inbox, self.closed)

    async def play(self, player: AudioOut) -> None:
        await self.closed.wait()  # no audio in memory: the player is driven by the test if at all

    def lose(self, reason: str) -> None:
        if not self.closed.is_set():
            self.close_reason = reason
            self.closed.set()

    async def close(self) -> None:
        self.uplink.stop()
        self.lose("closed by us")
