"""One connected link to a Realtime session: credentials → transport → ``session.update`` → events and audio.

A link owns exactly one :class:`~voicecoach.transport.base.Transport` and the tasks that serve it (server
events in, received audio out, and supervision of the connection), all in its own TaskGroup. It holds no
policy: what the events mean, when to reconnect and when to stop are the runner's and the coach's business.
It reports through the callback it is given and never imports the runner, so a run can hold several links
(the user's, and later the call's).

Call order: ``link = await Link.open(...)`` (raises ConnectError subclasses, and closes what it opened),
optionally ``await link.ready(timeout_s)`` (the server's answer to the configuration), then
``reason = await link.serve(on_message, player)`` (returns when the connection is lost or closed), and
``await link.close()`` (idempotent; ends ``serve``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr

from .audio.base import FrameSource
from .errors import TransportError
from .transport.base import AudioOut, Transport, TransportFactory, Uplink

log = logging.getLogger(__name__)

OnMessage = Callable[[str | bytes], None]


class Link:
    def __init__(self, transport: Transport, timings: dict[str, float]) -> None:
        self.transport = transport
        self.timings = timings  # connect phases in ms: token_ms, then the transport's own
        self._early: list[str | bytes] = []  # read by ready(), delivered first by serve()

    @property
    def uplink(self) -> Uplink:
        return self.transport.uplink

    @classmethod
    async def open(
        cls,
        *,
        credential: Callable[[], Awaitable[SecretStr]],
        factory: TransportFactory,
        source: FrameSource,
        session_update: dict[str, Any],
        timeout_s: float,
    ) -> Link:
        """Get a key, connect, and send the session configuration. The caller waits for ``session.updated``."""
        started = time.monotonic()
        key = await credential()
        token_ms = (time.monotonic() - started) * 1000
        transport = factory(source, key)
        try:
            await transport.connect(timeout_s)
            transport.send(session_update)
        except BaseException:
            await transport.close()  # a failed or cancelled connect leaves nothing open behind it
            raise
        log.debug("%s link up: %s", transport.name, transport.timings)
        return cls(transport, {"token_ms": token_ms, **transport.timings})

    async def ready(self, timeout_s: float) -> str | bytes:
        """Wait until the server has answered the configuration: ``session.updated``, or an ``error`` (the coach
        reports it), and return that answer. Every message read meanwhile is kept for :meth:`serve`. Raises
        TransportError when the connection ends first or nothing comes within ``timeout_s``."""
        started = time.monotonic()
        messages = self.transport.messages()
        try:
            async with asyncio.timeout(timeout_s):
                async for raw in messages:
                    self._early.append(raw)
                    if _answer_type(raw) in ("session.updated", "error"):
                        self.timings["session_update_ms"] = (time.monotonic() - started) * 1000
                        return raw
        except TimeoutError as exc:
            raise TransportError(f"no answer to session.update within {timeout_s:g} s") from exc
        finally:
            await messages.aclose()  # serve() reads on from a new one
        raise TransportError(f"the connection closed before the session was ready ({self.transport.close_reason})")

    async def serve(self, on_message: OnMessage, player: AudioOut) -> str:
        """Deliver server events to ``on_message`` and audio to ``player`` until the connection ends.

        Returns why it ended (the transport's ``close_reason``). ``on_message`` runs on the event loop, in
        arrival order, and must not raise: the runner's handler turns bad input into data, never an exception.
        """
        transport = self.transport
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._events(on_message), name=f"{transport.name}-events")
            playout = tg.create_task(transport.play(player), name=f"{transport.name}-playout")
            await transport.closed.wait()  # supervision: the only way out is the connection ending
            playout.cancel()  # the remote track may never end by itself after a lost link
        return transport.close_reason

    async def _events(self, on_message: OnMessage) -> None:
        early, self._early = self._early, []
        for raw in early:
            on_message(raw)
        async for raw in self.transport.messages():
            on_message(raw)

    def send(self, event: dict[str, Any]) -> str:
        return self.transport.send(event)

    @property
    def audio_epoch(self) -> float | None:
        """When (``time.monotonic()``) the first sample of this session's input audio was captured: the origin of
        the server's ``audio_start_ms``. None until audio flows, or for an uplink that does not say (tests).

        WebRTC sends frames (silence) from the start of the call, the WebSocket only once the gate is open."""
        field = "first_open_frame_at" if self.transport.name == "websocket" else "first_frame_at"
        epoch = getattr(self.uplink, field, None)
        return epoch if isinstance(epoch, float) else None

    async def close(self) -> None:
        await self.transport.close()


async def hold(
    link: Link, on_message: OnMessage, player: AudioOut, *until: asyncio.Event, closing: Callable[[], None]
) -> None:
    """Serve ``link`` until the connection ends or one of ``until`` is set, then close it (always; ``closing``
    runs just before). Raises what a link task raised: a bug there is never swallowed."""
    serving = asyncio.create_task(link.serve(on_message, player), name=f"{link.transport.name}-link")
    waiters = [asyncio.ensure_future(event.wait()) for event in until]
    try:
        await asyncio.wait([serving, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        closing()
        await link.close()  # ends serving
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(serving, *waiters, return_exceptions=True)
    if not serving.cancelled() and (error := serving.exception()) is not None:
        raise error


def _answer_type(raw: str | bytes) -> str | None:
    """The ``type`` of a server message, cheaply and without raising (bad input is the coach's to report)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    kind = data.get("type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None
