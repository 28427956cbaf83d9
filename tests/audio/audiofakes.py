"""Fakes for the audio tests: a remote track the test feeds, sources, sinks, and a bounded poll."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, WIRE_RATE, Pcm, frame_from_pcm

if TYPE_CHECKING:
    from voicecoach.audio.tracks import Player

BOUND_S = 10.0  # upper bound for any single wait in these tests; none should come near it


async def wait_for(condition: Callable[[], bool], timeout: float = BOUND_S, what: str = "condition") -> None:
    """Poll ``condition`` on the loop until it holds; fail after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def tone(ms: float, freq: float = 440.0, rate: int = WIRE_RATE, level: float = 0.3, channels: int = 1) -> Pcm:
    n = int(rate * ms / 1000)
    mono = (np.sin(2 * np.pi * freq * np.arange(n) / rate) * level * 32767).astype(np.int16)
    return mono if channels == 1 else np.repeat(mono.reshape(-1, 1), channels, axis=1)


def stereo_frames(pcm: Pcm) -> list[Pcm]:
    """Cut mono 48 kHz PCM into 20 ms stereo frames, as aiortc delivers the remote track."""
    frames = []
    for i in range(0, pcm.size - WIRE_FRAME_SAMPLES + 1, WIRE_FRAME_SAMPLES):
        mono = pcm[i : i + WIRE_FRAME_SAMPLES]
        frames.append(np.repeat(mono.reshape(-1, 1), 2, axis=1))
    return frames


class QueueTrack(MediaStreamTrack):
    """A remote track the test feeds: ``put(pcm)`` queues a 48 kHz stereo frame, ``end()`` ends the track."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[Pcm | None] = asyncio.Queue()
        self._pts = 0

    def put(self, pcm: Pcm) -> None:
        self._queue.put_nowait(pcm)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def recv(self) -> av.AudioFrame:
        pcm = await self._queue.get()
        if pcm is None:
            self.stop()
            raise MediaStreamError
        frame = frame_from_pcm(pcm, WIRE_RATE, self._pts)
        self._pts += pcm.shape[0]
        return frame


class FakeSource:
    """A FrameSource that counts reads; ``realtime`` sources wait for ``release()`` per frame."""

    def __init__(self, realtime: bool = False, error: Exception | None = None) -> None:
        self.realtime = realtime
        self.reads = 0
        self.closed = False
        self.error = error
        self._released = asyncio.Semaphore(0)

    def release(self, frames: int = 1) -> None:
        for _ in range(frames):
            self._released.release()

    async def read(self) -> Pcm:
        if self.error is not None:
            raise self.error
        if self.realtime:
            await self._released.acquire()
        self.reads += 1
        # Each frame is a constant equal to its sequence number, so a test can tell which frame it got.
        return np.full(WIRE_FRAME_SAMPLES, self.reads, dtype=np.int16)

    def close(self) -> None:
        self.closed = True


class RecordingSink:
    """A FrameSink (not realtime) that keeps what it is given."""

    def __init__(self, rate: int = 24000, channels: int = 1) -> None:
        self.rate = rate
        self.channels = channels
        self.blocks: list[Pcm] = []
        self.closed = False

    def write(self, pcm: Pcm) -> None:
        self.blocks.append(pcm.copy())

    @property
    def pcm(self) -> Pcm:
        if not self.blocks:
            return np.zeros((0, self.channels), dtype=np.int16)
        return np.concatenate([b.reshape(-1, self.channels) for b in self.blocks])

    def close(self) -> None:
        self.closed = True


class PullingSink:
    """A PullSink whose 'audio thread' is the test: ``tick()`` pulls one block, as a device callback would."""

    def __init__(self, rate: int = 48000, channels: int = 2, block_ms: int = 10) -> None:
        self.rate = rate
        self.channels = channels
        self.output_latency = 0.0
        self.block = np.zeros((rate * block_ms // 1000, channels), dtype=np.int16)
        self.pull: Callable[[Pcm], None] | None = None
        self.played: list[Pcm] = []

    def start(self, pull: Callable[[Pcm], None]) -> None:
        self.pull = pull

    def tick(self, blocks: int = 1) -> Pcm:
        assert self.pull is not None, "Player.run has not started the sink"
        out = []
        for _ in range(blocks):
            self.pull(self.block)
            out.append(self.block.copy())
            self.played.append(out[-1])
        return np.concatenate(out)

    def write(self, pcm: Pcm) -> None:
        raise AssertionError("a Player must pull from a PullSink, not write to it")

    def close(self) -> None:
        pass


# The type of the ``run_player`` fixture (conftest.py); here because test modules must not import conftest.
StartPlayer = Callable[["Player", QueueTrack], Awaitable["asyncio.Task[None]"]]
