"""The playout ring and its ledger: the real-time half of the Player, pure (no clock, no loop, no I/O).

:class:`PlayoutBuffer` is the lock-free ring a device's audio thread pulls from: jitter pre-buffer, flush
with a fade, underruns. :class:`PlayLedger` is the event-loop side's account of what in the ring is loud and
whose it is: it is told what was pushed and how far the output has read, with the time of that read, and
answers how much of each response was played and when sound started and stopped
(:class:`Audible`, :class:`Sounding`). :mod:`voicecoach.audio.tracks` wires the two to a track and a sink.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np

from .frames import FADE_MS, PREBUFFER_MS, Pcm, as_channels, fade_out_ramp


class PlayoutBuffer:
    """Single-producer, single-consumer ring of output PCM: jitter pre-buffer, flush with fade, underruns.

    The producer (the event loop) calls :meth:`push`, :meth:`flush` and reads the figures; the consumer (a
    device's audio thread, or a pump task) calls :meth:`pull`. Positions count sample frames since creation.
    It is lock-free by construction: each field has one writer (``write_pos`` and ``_flush_request`` the
    producer; ``read_pos``, ``underruns`` and the cut log the consumer) and every publication is one attribute
    store, atomic under the GIL. ``pull`` allocates nothing and never blocks. It keeps no clock: whoever pulls
    knows when it did.

    Flush: the consumer fades the next ``fade_ms`` of what was queued at the time of the request, then jumps to
    the write position of the request; audio pushed after ``flush()`` is kept. Each jump is logged as a cut
    ``(from, to)`` *before* ``read_pos`` moves, so a reader that reads ``read_pos`` first then the cuts never
    mistakes skipped audio for played audio. An underrun (the queue running dry while playing) plays zeros,
    counts once, and waits for the pre-buffer to fill again.
    """

    CUT_LOG = 64

    def __init__(
        self,
        rate: int,
        channels: int,
        *,
        prebuffer_ms: int = PREBUFFER_MS,
        capacity_s: float = 4.0,
        fade_ms: int = FADE_MS,
    ) -> None:
        self.rate = rate
        self.channels = channels
        self._ring = np.zeros((int(rate * capacity_s), channels), dtype=np.int16)
        self._prebuffer = max(0, rate * prebuffer_ms // 1000)
        self._ramp = fade_out_ramp(max(1, rate * fade_ms // 1000))
        self._scratch = np.zeros((self._ramp.shape[0], channels), dtype=np.float32)
        self.write_pos = 0
        self.read_pos = 0
        self.underruns = 0
        self._flush_request = (0, 0)  # (sequence, write_pos at the request)
        self._flush_seen = 0
        self._fade: tuple[int, int, int] | None = None  # (fade start, fade end, jump target)
        self._priming = True
        self._cuts = np.zeros((self.CUT_LOG, 2), dtype=np.int64)
        self._cut_count = 0

    @property
    def buffered(self) -> int:
        return self.write_pos - self.read_pos

    def push(self, pcm: Pcm) -> int:
        """Queue ``(n,)``/``(n, channels)`` PCM; returns how many frames fitted (the rest is dropped)."""
        data = as_channels(pcm)
        n = min(int(data.shape[0]), int(self._ring.shape[0]) - self.buffered)
        self._copy_in(data[:n], self.write_pos)
        self.write_pos += n  # publish only after the samples are in place
        return n

    def flush(self) -> None:
        """Ask the consumer to fade out and drop everything queued so far (takes effect at its next pull)."""
        self._flush_request = (self._flush_request[0] + 1, self.write_pos)

    def cuts_since(self, count: int) -> tuple[list[tuple[int, int]], int]:
        """Cuts ``(from, to)`` logged after the first ``count``, and the count to pass next time.

        The log keeps the last ``CUT_LOG`` cuts; a reader that fell further behind gets only those.
        """
        end = self._cut_count
        rows = (self._cuts[i % self.CUT_LOG] for i in range(max(count, end - self.CUT_LOG), end))
        return [(int(a), int(b)) for a, b in rows], end

    def pull(self, out: Pcm, *, ignore_prebuffer: bool = False) -> None:
        """Fill ``out`` (``(frames, channels)`` int16) in place. Consumer side: cheap, never blocks."""
        seq, target = self._flush_request
        if seq != self._flush_seen:
            self._flush_seen = seq
            self._begin_flush(target)
        filled, frames = 0, int(out.shape[0])
        while filled < frames:
            if self._fade is not None:
                n = self._pull_fade(out, filled)
                filled += n
                if n:
                    continue
            available = self.write_pos - self.read_pos
            if self._priming and not ignore_prebuffer:
                if available < max(1, self._prebuffer):
                    break
                self._priming = False
            n = min(frames - filled, available)
            if n <= 0:
                if not self._priming:
                    self.underruns += 1  # plain increment: read and reported by the event loop, not here
                    self._priming = True
                break
            self._copy_out(out[filled : filled + n], self.read_pos)
            self.read_pos += n
            filled += n
        out[filled:] = 0

    def _begin_flush(self, target: int) -> None:
        if self._fade is not None:  # already fading: finish that fade, then jump to the newer target
            self._fade = (self._fade[0], self._fade[1], max(self._fade[2], target))
        elif self._priming:  # nothing audible yet: skip without a fade
            self._cut(self.read_pos, target)
        else:
            self._fade = (self.read_pos, min(self.read_pos + self._ramp.shape[0], target), target)

    def _pull_fade(self, out: Pcm, filled: int) -> int:
        assert self._fade is not None
        begin, end, target = self._fade
        n = min(int(out.shape[0]) - filled, end - self.read_pos)
        if n > 0:
            k = self.read_pos - begin
            scratch = self._scratch[:n]
            self._copy_out(out[filled : filled + n], self.read_pos)
            np.multiply(out[filled : filled + n], self._ramp[k : k + n], out=scratch)
            out[filled : filled + n] = scratch
            self.read_pos += n
        if self.read_pos >= end:
            self._fade = None
            self._cut(self.read_pos, target)
            self._priming = True  # what follows a flush is a new stream: re-buffer it
        return max(n, 0)

    def _cut(self, lo: int, hi: int) -> None:
        if hi > lo:
            self._cuts[self._cut_count % self.CUT_LOG] = (lo, hi)
            self._cut_count += 1
            self.read_pos = hi

    def _copy_in(self, data: Pcm, pos: int) -> None:
        size = self._ring.shape[0]
        i = pos % size
        first = min(data.shape[0], size - i)
        self._ring[i : i + first] = data[:first]
        self._ring[: data.shape[0] - first] = data[first:]

    def _copy_out(self, out: Pcm, pos: int) -> None:
        size = self._ring.shape[0]
        i = pos % size
        first = min(out.shape[0], size - i)
        out[:first] = self._ring[i : i + first]
        out[first:] = self._ring[: out.shape[0] - first]


@dataclass(frozen=True)
class Audible:
    """The first loud sample since ``PlayLedger.mark(response_id)`` was handed to the output at ``at``."""

    response_id: str | None
    at: float


@dataclass(frozen=True)
class Sounding:
    """The output started (True) or stopped (False) producing sound; ``at``: when the first or last loud
    sample was handed over."""

    sounding: bool
    at: float


PlayEvent = Audible | Sounding


@dataclass
class _Segment:
    """Loud output samples ``[start, end)`` in the ring's write positions."""

    start: int
    end: int
    response_id: str | None


class PlayLedger:
    """Which queued samples are loud and whose, and what of them the output has played.

    Call order (all on one thread, the event loop's): :meth:`pushed` for every loud stretch written to the
    ring, :meth:`mark` when a new response starts, and :meth:`advance` after output blocks were handed over,
    with the ring's read position after them, the cuts the ring logged, and the time of the hand-over. Only
    ``advance`` moves the account forward, so every figure is as of the last hand-over it was told about.

    "Sounding" is: the last block handed over held a loud sample and the next sample to play is loud and
    already queued. It turns False when the loud run ends (a pause between sentences, an underrun, a flush);
    the time reported is that of the hand-over that held the last loud sample.
    """

    def __init__(self) -> None:
        self._segments: deque[_Segment] = deque()
        self._played: defaultdict[str | None, int] = defaultdict(int)
        self._response_id: str | None = None
        self._want_first = False
        self._first: tuple[int, str | None] | None = None  # (write position, response) of the first loud sample
        self._read = 0
        self._loud_done = 0  # loud samples in retired segments
        self._loud_seen = 0  # loud samples played as of the last advance
        self._last_loud_at = 0.0
        self.sounding = False

    @property
    def idle(self) -> bool:
        """Nothing loud is queued or playing: no ``advance`` can report anything until the next ``pushed``."""
        return not self._segments and not self.sounding

    def mark(self, response_id: str | None) -> None:
        """Attribute loud samples pushed from now on to ``response_id``; report its first one (:class:`Audible`)."""
        self._response_id = response_id
        self._want_first, self._first = True, None

    def pushed(self, start: int, end: int) -> None:
        """Loud samples were written to ring positions ``[start, end)`` (contiguous with earlier ones or not)."""
        if end <= start:
            return
        last = self._segments[-1] if self._segments else None
        if last is not None and last.end == start and last.response_id == self._response_id:
            last.end = end
        else:
            self._segments.append(_Segment(start, end, self._response_id))
        if self._want_first:
            self._want_first, self._first = False, (start, self._response_id)

    def played_samples(self, response_id: str | None) -> int:
        """Loud samples of ``response_id`` handed to the output (as of the last ``advance``)."""
        head = self._segments[0] if self._segments else None
        partial = self._read - head.start if head is not None and head.start < self._read else 0
        return self._played[response_id] + (partial if head is not None and head.response_id == response_id else 0)

    def advance(self, read: int, cuts: list[tuple[int, int]], at: float) -> list[PlayEvent]:
        """The output has read up to ``read`` (handed over at ``at``); ``cuts`` are the ring's new skips."""
        for lo, hi in cuts:
            self._cut(lo, hi)
        self._read = read = max(read, self._read)
        while self._segments and self._segments[0].end <= read:
            s = self._segments.popleft()
            self._played[s.response_id] += s.end - s.start
            self._loud_done += s.end - s.start
        head = self._segments[0] if self._segments else None
        loud = self._loud_done + (read - head.start if head is not None and head.start < read else 0)
        events: list[PlayEvent] = []
        if loud > self._loud_seen:
            self._loud_seen, self._last_loud_at = loud, at
            if not self.sounding:
                self.sounding = True
                events.append(Sounding(True, at))
            if self._first is not None and read > self._first[0]:
                events.append(Audible(self._first[1], at))
                self._first = None
        if self.sounding and not (head is not None and head.start <= read):
            self.sounding = False
            events.append(Sounding(False, self._last_loud_at))
        return events

    def _cut(self, lo: int, hi: int) -> None:
        """The ring skipped ``[lo, hi)``: none of it will play."""
        kept: deque[_Segment] = deque()
        for s in self._segments:
            if s.end <= lo or s.start >= hi:
                kept.append(s)
                continue
            if s.start < lo:
                kept.append(_Segment(s.start, lo, s.response_id))
            if s.end > hi:
                kept.append(_Segment(hi, s.end, s.response_id))
        self._segments = kept
        if self._first is not None and lo <= self._first[0] < hi:
            self._want_first, self._first = True, None  # never played: report the next loud sample instead
