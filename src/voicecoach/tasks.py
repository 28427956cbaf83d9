"""Small asyncio helpers for tasks that must end when the run does (every task they start is owned and awaited)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


async def unless_set(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """Run ``work``, or cancel it as soon as ``stop`` is set (None then)."""
    task = asyncio.create_task(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
    if task.cancelled():
        return None
    return task.result()


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended (their exceptions are theirs: already reported)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# aiortc starts some tasks itself and never awaits them (RTCPeerConnection.__connect, the SCTP transmitter).
# Closing a peer connection while ICE is still connecting makes them fail (InvalidStateError "RTCIceTransport
# is closed", ConnectionError "not connected"), and asyncio then prints "Task exception was never retrieved"
# with a traceback on stderr when the task is collected (aiortc/aiortc#429): a stop during start-up looked like
# a crash. The link's own state already tells the runner what happened, so these become debug lines.
_AIORTC_OWNERS = ("RTCPeerConnection.", "RTCSctpTransport.", "RTCDtlsTransport.", "RTCIceTransport.")


def quiet_aiortc_orphans(loop: asyncio.AbstractEventLoop) -> None:
    """Demote the unretrieved failures of aiortc's own tasks to debug logs; anything else as asyncio reports it."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        task = context.get("future")
        if isinstance(task, asyncio.Task) and context.get("exception") is not None:
            owner = getattr(task.get_coro(), "__qualname__", "")
            if owner.startswith(_AIORTC_OWNERS):
                log.debug("aiortc's %s failed after its connection closed: %r", owner, context["exception"])
                return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
