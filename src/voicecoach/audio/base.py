"""The audio interfaces: what a source, a sink and a pull sink promise. No implementation lives here.

:mod:`voicecoach.audio.files` implements them for files and memory, :mod:`voicecoach.audio.devices` for sound
cards; the tracks and the runner speak only these protocols. Frame and block sizes are in
:mod:`voicecoach.audio.frames`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .frames import Pcm


class FrameSource(Protocol):
    """Produces 20 ms frames of 48 kHz mono int16 (``WIRE_FRAME_SAMPLES`` = 960 samples each).

    ``realtime`` is True when ``read`` itself waits for real time to pass (a device); False when the consumer
    must pace it (a file or a buffer, which can answer at once). After ``close`` a device's ``read`` raises
    :class:`~voicecoach.errors.AudioError`; a file keeps returning silence.
    """

    realtime: bool

    async def read(self) -> Pcm: ...

    def close(self) -> None: ...


@runtime_checkable
class EndingSource(Protocol):
    """A :class:`FrameSource` that can run out (a file that is not looped, a buffer).

    ``ended`` is set by the ``read`` that returned the frame holding the last real sample; every later
    ``read`` returns silence, so a track fed by it keeps running while the runner waits for what the last
    audio caused (its transcript, a hint). A looping source never sets it.
    """

    realtime: bool
    ended: asyncio.Event

    async def read(self) -> Pcm: ...

    def close(self) -> None: ...


class FrameSink(Protocol):
    """Consumes PCM already in the sink's own ``rate`` and ``channels`` (``(n,)`` or ``(n, channels)`` int16)."""

    rate: int
    channels: int

    def write(self, pcm: Pcm) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PullSink(Protocol):
    """A sink that plays in real time and pulls its audio (a device), instead of being written to.

    After ``start(pull)`` the sink calls ``pull(block)`` from its audio thread for every output block; ``pull``
    must fill the ``(frames, channels)`` int16 array in place, quickly, without blocking or allocating much.
    ``output_latency`` is the seconds from a pulled sample to the speaker, as far as the sink knows.
    """

    output_latency: float

    def start(self, pull: Callable[[Pcm], None]) -> None: ...
