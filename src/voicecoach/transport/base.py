"""The transport seam: what a link needs from a network connection to a Realtime session, and nothing more.

A transport carries JSON events both ways and audio both ways. The runner and :mod:`voicecoach.link` depend
on this protocol only, never on a concrete class, so the same lifecycle runs over WebRTC today, over a
WebSocket next, and over an in-memory peer in tests (like httpcore's network backends).

Call order, for every implementation::

    t = factory(uplink_source, secret)      # nothing on the network yet
    await t.connect(timeout_s)              # raises ConnectError subclasses; t.timings filled in
    t.send(event) ... / async for raw in t.messages() ... / await t.play(player)
    await t.close()                         # idempotent; always called, also after a failed connect

``closed`` is set (with ``close_reason``) when the connection is lost or closed; ``messages()`` then ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol, TypeVar

from pydantic import SecretStr

from ..audio.base import FrameSource

T = TypeVar("T")


class Uplink(Protocol):
    """The outbound microphone stream as the coach controls it."""

    @property
    def muted(self) -> bool:
        """While True the server hears silence with continuous timestamps: the call stays up."""

    @muted.setter
    def muted(self, value: bool) -> None: ...

    def open_gate(self) -> None:
        """``session.updated`` arrived: microphone audio may reach the server from now on."""

    def stop(self) -> None: ...


class AudioOut(Protocol):
    """Where received coach audio goes (the :class:`~voicecoach.audio.tracks.Player`)."""

    async def run(self, track: Any) -> None: ...


class Transport(Protocol):
    name: str  # "webrtc" | "websocket" | "memory": shown to the user, recorded in reports
    timings: dict[str, float]  # connect phases in ms, named for what they measure
    closed: asyncio.Event
    close_reason: str

    @property
    def uplink(self) -> Uplink:
        """The microphone stream this transport sends."""

    async def connect(self, timeout_s: float) -> None: ...

    def send(self, event: dict[str, Any]) -> str:
        """Send one client event; returns the text sent, or "" when this transport has no such event and dropped
        it (``output_audio_buffer.clear`` is WebRTC's). Raises TransportError when it cannot go."""

    def messages(self) -> AsyncGenerator[str | bytes, None]:
        """Server events as they arrive, raw; ends when the transport closes."""

    async def play(self, player: AudioOut) -> None:
        """Hand received audio to ``player`` until the transport closes."""

    async def close(self) -> None: ...


# Builds one transport for one link: the microphone source it sends, and the key it connects with.
TransportFactory = Callable[[FrameSource, SecretStr], Transport]


async def until_closed(inbox: asyncio.Queue[T], closed: asyncio.Event) -> AsyncGenerator[T, None]:
    """What ``inbox`` holds, in order, then what arrives, until ``closed`` is set and the inbox is empty.

    The shared body of the transports' ``messages()``: whatever is already queued when the connection closes is
    still delivered (the last transcript before a drop is not lost).
    """
    while True:
        if not inbox.empty():
            yield inbox.get_nowait()
            continue
        if closed.is_set():
            return
        got = asyncio.ensure_future(inbox.get())
        gone = asyncio.ensure_future(closed.wait())
        try:
            await asyncio.wait({got, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not got.done():
                got.cancel()
            await asyncio.gather(got, gone, return_exceptions=True)
        if got.done() and not got.cancelled():
            yield got.result()
