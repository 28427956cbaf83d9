"""Pushed coach audio on its way to the playout ring: a WebSocket's deltas, which arrive faster than real time.

:class:`FeedBacklog` is the loop-side queue in front of :class:`~voicecoach.audio.playout.PlayoutBuffer` for
:meth:`voicecoach.audio.tracks.Player.feed`: it resamples to the sink's format, holds what does not fit the ring
yet (a whole hint may arrive at once), hands it out in blocks, and discards the audio of flushed responses by id.
Single-threaded: the event loop only.
"""

from __future__ import annotations

from collections import deque

from .frames import Pcm, Resampler, as_channels

FLUSHED_KEPT = 16  # responses whose late audio is still discarded after a flush (the newest ones)


class FeedBacklog:
    def __init__(self, rate: int, channels: int, block: int) -> None:
        self.rate = rate
        self.channels = channels
        self.block = block
        self.samples_in = 0  # input samples accepted, at their own rate
        self._queue: deque[Pcm] = deque()
        self._resampler: Resampler | None = None
        self._fed: set[str] = set()  # responses fed since the last flush
        self._flushed: deque[str] = deque(maxlen=FLUSHED_KEPT)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def add(self, pcm: Pcm, rate: int, response_id: str | None) -> None:
        """Queue mono ``pcm`` at ``rate``, unless it belongs to a flushed response (its tail still in flight)."""
        if response_id is not None:
            if response_id in self._flushed:
                return
            self._fed.add(response_id)
        r = self._resampler
        if r is None or r.in_rate != rate:
            r = self._resampler = Resampler(rate, 1, self.rate, self.channels)
        out = as_channels(r.process(pcm.reshape(-1)))
        if out.shape[0]:
            self.samples_in += int(pcm.size)
            self._queue.append(out)

    def peek(self) -> Pcm:
        """The next block (``(≤ block, channels)``); only when the backlog is not empty."""
        return self._queue[0][: self.block]

    def consumed(self, n: int) -> None:
        """The first ``n`` sample frames of :meth:`peek` went into the ring."""
        head = self._queue[0]
        if n < head.shape[0]:
            self._queue[0] = head[n:]
        else:
            self._queue.popleft()

    def flush(self, marked: str | None) -> None:
        """Drop everything queued; audio that still arrives for these responses (and ``marked``) is discarded."""
        self._queue.clear()
        self._resampler = None  # its filter state holds the flushed audio's last samples
        self._flushed.extend(self._fed | ({marked} if marked is not None else set()))
        self._fed.clear()

    def clear(self) -> None:
        self._queue.clear()
