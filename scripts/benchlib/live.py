"""A live client for the hint benchmarks: the real Runner in this process, over loopback WebRTC or WebSocket.

* :class:`BenchView` notes when the runner executed each action of interest. The runner calls
  ``view.show(action)`` right after carrying the action out (an event handed to the data channel, the player
  flushed), so the note's time is the moment the work was done.
* :class:`BlockLog` and the two recording sinks keep every output block with the time it left the player, in
  preallocated memory, so that on a device's audio thread recording costs one copy and no allocation. The
  moment the last audible sample left the player is computed afterwards, on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np

from benchlib.common import bench_settings, poll
from voicecoach.audio.files import FrameSink, PcmSource
from voicecoach.audio.frames import WIRE_RATE, Pcm, silence
from voicecoach.audio.tracks import SILENCE_PEAK
from voicecoach.coach.actions import Action, FlushPlayback, Intent, Metric, Send
from voicecoach.coach.settings import CoachSettings
from voicecoach.protocol import client_events as ce
from voicecoach.runner import Runner


@dataclass(frozen=True)
class Seen:
    kind: str  # "create" | "cancel" | "clear" | "flush" | "metric"
    at: float  # time.monotonic() when the runner had carried it out
    asked_at: float | None = None  # the coach's ``now`` for the request that caused it (runner clock: monotonic)
    name: str = ""
    value: float = 0.0


class BenchView:
    """A View recording sends, flushes and metrics; everything else is dropped (no output, no growth)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    def show(self, action: Action, now: float) -> None:
        at = time.monotonic()
        match action:
            case Send(event=ce.ResponseCreate(), asked_at=asked):
                self.seen.append(Seen("create", at, asked))
            case Send(event=ce.ResponseCancel(), asked_at=asked):
                self.seen.append(Seen("cancel", at, asked))
            case Send(event=ce.OutputAudioBufferClear(), asked_at=asked):
                self.seen.append(Seen("clear", at, asked))
            case FlushPlayback(asked_at=asked):
                self.seen.append(Seen("flush", at, asked))
            case Metric(name=name, value=value):
                self.seen.append(Seen("metric", at, name=name, value=value))
            case _:
                pass

    def info(self, text: str) -> None:
        pass

    def since(self, mark: int, kind: str, name: str = "") -> list[Seen]:
        return [s for s in self.seen[mark:] if s.kind == kind and (not name or s.name == name)]

    def has(self, mark: int, kind: str, name: str = "") -> Callable[[], bool]:
        """A condition for polling: something of ``kind`` (and ``name``) was seen after ``mark``."""
        return lambda: bool(self.since(mark, kind, name))


class BlockLog:
    """Output blocks with the monotonic time each was taken from the player. One writer thread; read later.

    ``record`` copies into preallocated rings (blocks longer than ``max_frames`` are cut; the last
    ``capacity`` blocks are kept whole, the times of the last ``TIMES`` pulls alone) and publishes the count
    last, so a reader on another thread sees only complete entries.
    """

    TIMES = 1 << 16  # pull times kept for the gap figures: minutes of blocks

    def __init__(self, rate: int, channels: int, *, capacity: int = 1024, max_frames: int = 4096) -> None:
        self.rate = rate
        self._data = np.zeros((capacity, max_frames, channels), dtype=np.int16)
        self._frames = np.zeros(capacity, dtype=np.int64)
        self._times = np.zeros(capacity, dtype=np.float64)
        self._all_times = np.zeros(self.TIMES, dtype=np.float64)
        self.count = 0

    def record(self, block: Pcm) -> None:
        i = self.count % self._times.shape[0]
        n = min(int(block.shape[0]), self._data.shape[1])
        self._data[i, :n] = block[:n].reshape(n, -1)
        self._frames[i] = n
        now = time.monotonic()
        self._times[i] = now
        self._all_times[self.count % self.TIMES] = now
        self.count += 1

    def block_ms(self) -> float:
        """Median output block length (ms) over what is recorded."""
        n = min(self.count, self._frames.shape[0])
        return float(np.median(self._frames[:n])) * 1000 / self.rate if n else 0.0

    def gaps_ms(self) -> list[float]:
        """Milliseconds between consecutive pulls (the last ``TIMES``): a late pull shows as a long gap."""
        n = min(self.count, self.TIMES)
        order = np.sort(self._all_times[:n])  # ring order → time order
        return [float(x) for x in np.diff(order) * 1000]

    def silent_at(self, since: float) -> float:
        """When the last audible sample played at or after ``since`` left the player (``since`` if none did).

        A block taken at ``t`` plays from ``t`` on, one sample per 1/rate s; a sample is audible when its
        magnitude is over the player's own silence threshold (``SILENCE_PEAK``). Scans back from the newest
        block and stops at the first that ended before ``since``: blocks are recorded in time order.
        """
        last = since
        capacity = self._times.shape[0]
        for k in range(self.count - 1, max(0, self.count - capacity) - 1, -1):
            i = k % capacity
            t, n = float(self._times[i]), int(self._frames[i])
            if t + n / self.rate <= since:
                break
            loud = np.flatnonzero(np.abs(self._data[i, :n].astype(np.int32)).max(axis=1) > SILENCE_PEAK)
            if loud.size:
                last = max(last, t + (int(loud[-1]) + 1) / self.rate)
        return last


class RecordingFileSink:
    """A file sink (not a PullSink, so the Player clocks it out) that logs each block it is given."""

    def __init__(self, inner: FrameSink) -> None:
        self.inner = inner
        self.rate = inner.rate
        self.channels = inner.channels
        self.log = BlockLog(inner.rate, inner.channels)

    def write(self, pcm: Pcm) -> None:
        self.log.record(pcm.reshape(pcm.shape[0], -1))
        self.inner.write(pcm)

    def close(self) -> None:
        self.inner.close()


class RecordingPullSink:
    """A device sink (PullSink) whose audio-thread pull also logs the block it filled (one copy, no allocation)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.rate: int = inner.rate
        self.channels: int = inner.channels
        self.output_latency: float = inner.output_latency
        self.log = BlockLog(inner.rate, inner.channels)

    def start(self, pull: Callable[[Pcm], None]) -> None:
        log = self.log

        def logged(block: Pcm) -> None:
            pull(block)
            log.record(block)

        self.inner.start(logged)

    def write(self, pcm: Pcm) -> None:
        self.inner.write(pcm)

    def close(self) -> None:
        self.inner.close()


class RunningSession:
    """``async with``: ``self.runner`` (set by the subclass) running in a task owned here, entered once live
    (session.updated seen); on exit the session is stopped and awaited."""

    runner: Runner
    task_name = "bench-session"
    _task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.runner.run(), name=self.task_name)
        try:
            await self.wait(lambda: self.runner.coach.live, 20, "session.updated")
            self.check_up()
        except BaseException:
            await self._stop()
            raise
        return self

    def check_up(self) -> None:
        """What must hold once the session is live (nothing, unless a subclass says)."""

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def wait(self, condition: Callable[[], bool], limit_s: float, what: str) -> None:
        await poll(condition, limit_s, what, task=self._task)

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self.runner.stop("benchmark done")
        async with asyncio.timeout(15):
            await asyncio.gather(task, return_exceptions=True)


class LiveClient(RunningSession):
    """``async with LiveClient(base_url, sink) as client``: a running session, live (session.updated seen).

    Mic: silence (the server hears nothing, so only what the benchmark injects happens). Phrase cooldown 0:
    every injected trigger must fire. ``transport``: "webrtc" or "websocket" (never auto: a figure names its
    transport). On exit the session is stopped and awaited.
    """

    def __init__(self, base_url: str, sink: FrameSink, transport: str = "webrtc") -> None:
        settings = bench_settings(base_url, transport=transport, coach=CoachSettings(cooldown_seconds=0.0))
        self.view = BenchView()
        self.intents: asyncio.Queue[Intent] = asyncio.Queue()
        source = PcmSource(silence(WIRE_RATE), WIRE_RATE)
        self.runner = Runner(settings, self.view, source, sink, intents=self.intents)
        self.transport = transport

    def check_up(self) -> None:
        if self.runner.report.transport != self.transport:
            raise RuntimeError(f"asked for {self.transport}, came up on {self.runner.report.transport}")
