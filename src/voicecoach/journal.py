"""The run's journal: finished transcript items and interrupts → the session file, without the event loop waiting.

The runner owns one :class:`Journal` per run and calls it from the event loop. Each call decides at once
(first final wins, per speaker and item id; empty text is not an item) and only *enqueues* the record: one
writer thread does the ``O_APPEND`` write and the ``fsync`` of each record, in order. A key press therefore
never waits for a disk, however slow (a spun-down drive, a network home directory).

Crash safety is the session file's (:mod:`voicecoach.session_file`): a record is on disk once the writer has
processed it, so a ``kill -9`` loses at most what was still queued, a few milliseconds' worth. Nothing is on
disk until the first record: a run that never connected leaves no file. :meth:`Journal.aclose` writes the
run's summary (end time, duration, cost, and what the caller adds), but only into a file that already exists.

The writer thread is started at the first record (once per run: a start costs the loop a few hundred
microseconds), is not a daemon (so a queued record is not lost to interpreter exit), and is joined by
:meth:`Journal.aclose` / :meth:`Journal.close_sync`. So that a journal its owner forgot to close cannot hold the
process open, the thread also ends once the main thread has finished and the queue is empty (it looks every
``IDLE_CHECK_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .session_file import SessionFile, iso_utc, utcnow
from .store import SessionStore

log = logging.getLogger(__name__)

IDLE_CHECK_S = 0.5  # how often an idle writer looks whether the interpreter is shutting down without a close


@dataclass(frozen=True)
class _Marker:
    """Queued after records; the writer calls ``reached`` once everything before it is on disk."""

    reached: Callable[[], None]


class _Stop:
    """The last job: close the file and end the thread."""


Job = dict[str, Any] | _Marker | _Stop


class Journal:
    """Transcript and interrupt records for one run. All methods but :meth:`close_sync` are for the event loop.

    ``store`` None keeps nothing on disk but still answers "is this new?" (the runner's transcript relies on it).
    ``on_error`` is called once, on the loop that first wrote (else in the writer thread), with the first
    write failure (a :class:`~voicecoach.errors.UsageError` naming the file); later failures are only logged.
    A failed record is not retried, but later records are still tried: a full disk may free up.
    """

    def __init__(
        self,
        store: SessionStore | None,
        meta: Mapping[str, Any],
        *,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._file: SessionFile | None = store.create(meta) if store is not None else None  # nothing on disk yet
        self._clock: Callable[[], datetime] = self._file.clock if self._file is not None else utcnow
        self._started = self._file.started if self._file is not None else self._clock()
        self._on_error = on_error
        self._seen: set[tuple[str, str]] = set()  # (speaker or "coach", item id) of every finished item
        self._cut: set[str] = set()  # hints kept as cut short (their record, or their amendment, is written)
        self._interrupts = 0
        self._enqueued = 0
        self._closed = False
        self.failures = 0  # records the disk refused
        self._queue: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _thread and the "queue is empty, exit" decision; never held for I/O
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- records (event loop; none of these waits for the disk) -------------------------------------------

    def utterance(
        self,
        item_id: str,
        text: str,
        *,
        speaker: str = "you",
        started_at: float | None = None,
        label: str | None = None,
    ) -> bool:
        """Keep a finished utterance. False if it is a duplicate, empty, or the journal is closed.

        ``speaker`` is ``"you"`` (the microphone) or ``"them"`` (the other side of the call); ``label`` is how
        the transcript names that speaker when it is a setting (``them_label``: "Interviewer"). ``started_at``
        is when the words began, in wall-clock seconds since the epoch (``time.time()``): ``sessions show`` and
        the export order the items by it and show it instead of the time the transcript was finished. Two
        channels finish their transcripts out of order, so give it for every utterance of a two-speaker run.
        """
        text = text.strip()
        if not text or not self._first(speaker, item_id):
            return False
        # "you" keeps today's record shape (key = item id); another speaker's ids get a prefix, as two links
        # (two Realtime sessions) name their items independently.
        key = item_id if speaker == "you" else f"{speaker}:{item_id}"
        record: dict[str, Any] = {"kind": "utterance", "key": key, "role": "user", "text": text}
        if speaker != "you":
            record["speaker"] = speaker
        if label is not None and label.strip():
            record["label"] = " ".join(label.split())
        _stamp_start(record, started_at)
        self._put(record)
        return True

    def hint(self, item_id: str, tier: str, text: str, *, interrupted: bool, started_at: float | None = None) -> bool:
        """Keep a finished hint (``item_id`` is its response id). False if a duplicate, empty, or closed.

        First final wins: a hint kept when it finished and reported again when cut off stays the first version.
        ``started_at`` (wall-clock seconds) is when it began, as for :meth:`utterance`.
        """
        text = text.strip()
        if not text or not self._first("coach", item_id):
            return False
        record = {"kind": "hint", "key": item_id, "tier": tier, "text": text, "interrupted": interrupted}
        _stamp_start(record, started_at)
        self._put(record)
        return True

    def hint_cut(
        self,
        item_id: str,
        tier: str,
        text: str,
        *,
        generated_text: str,
        played_ms: float,
        trim: str,
        started_at: float | None = None,
    ) -> bool:
        """Keep a hint that was cut short: ``text`` is what was played, ``generated_text`` all that was generated.

        A hint not kept yet gets one record, ``interrupted`` with both texts. One already kept whole (its
        transcript finished before the cut) gets an amendment: a second ``hint`` record whose ``amends`` names the
        first one's key, which readers apply to it (:func:`voicecoach.transcript.items_of`), so the first record
        stays as it was fsynced. False if nothing was written (a repeat, nothing generated, or closed).
        """
        text, generated = text.strip(), generated_text.strip()
        if not generated or self._closed or item_id in self._cut:
            return False
        record: dict[str, Any] = {"kind": "hint", "key": item_id, "tier": tier, "text": text, "interrupted": True}
        if not self._first("coach", item_id):
            record |= {"key": f"{item_id}#cut", "amends": item_id}
        self._cut.add(item_id)
        record |= {"generated_text": generated, "played_ms": round(played_ms), "trim": trim}
        _stamp_start(record, started_at)
        self._put(record)
        return True

    def interrupt(self, why: str) -> None:
        """Keep the fact that the user interrupted the coach (``why``: the phrase or the key)."""
        if self._closed:
            return
        self._interrupts += 1
        self._put({"kind": "interrupt", "key": f"interrupt-{self._interrupts}", "why": why})

    # --- state ------------------------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The session file once it exists on disk (after the writer processed a record), else None."""
        return self._file.path if self._file is not None and self._file.exists else None

    @property
    def id(self) -> str | None:
        return self._file.id if self._file is not None and self._file.exists else None

    # --- flushing and closing ---------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait (without blocking the loop) until every record enqueued so far is on disk."""
        if self._closed:  # no more records can come: waiting for the writer to end is the same
            if (thread := self._thread) is not None:
                await asyncio.to_thread(thread.join)
            return
        if self._thread is None and self._queue.empty():
            return
        loop = asyncio.get_running_loop()
        reached: asyncio.Future[None] = loop.create_future()
        self._enqueue(_Marker(lambda: _resolve_threadsafe(loop, reached)))
        await reached

    async def aclose(self, summary: Mapping[str, Any]) -> None:
        """Write the summary record (only into a file that exists), wait for the writer, fsync and close.

        ``summary`` gives what the runner knows (``cost_usd``, ``reason``, ...); ``ended_at`` and ``duration_s``
        are filled in unless given. Idempotent; records offered after this are dropped.
        """
        thread = self._finish(summary)
        if thread is not None:
            await asyncio.to_thread(thread.join)

    def close_sync(self, summary: Mapping[str, Any] | None = None, timeout: float | None = None) -> bool:
        """:meth:`aclose` for a shutdown path with no event loop; blocks the caller. False if ``timeout`` passed."""
        thread = self._finish(summary or {})
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # --- inside -----------------------------------------------------------------------------------------

    def _first(self, speaker: str, item_id: str) -> bool:
        if self._closed or (speaker, item_id) in self._seen:
            return False
        self._seen.add((speaker, item_id))
        return True

    def _put(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        # Stamped now, on the loop: a slow disk must not make the record look later than it happened.
        record["t"] = iso_utc(self._clock())
        self._enqueued += 1
        self._enqueue(record)

    def _finish(self, summary: Mapping[str, Any]) -> threading.Thread | None:
        if self._closed:
            return self._thread
        self._closed = True
        if self._file is None:
            return None
        if self._enqueued:  # a file exists or is about to: a run that wrote nothing stays without one
            now = self._clock()
            record: dict[str, Any] = {
                "kind": "summary",
                "key": "summary",
                "ended_at": iso_utc(now),
                "duration_s": round((now - self._started).total_seconds(), 3),
            }
            record.update({k: v for k, v in summary.items() if k not in ("kind", "key")})
            record["t"] = iso_utc(now)
            self._enqueue(record)
        with self._lock:
            if self._thread is None:
                self._file.close()
                return None
            self._queue.put(_Stop())
            return self._thread

    def _enqueue(self, job: Job) -> None:
        with self._lock:
            self._queue.put(job)
            if self._thread is None:
                with contextlib.suppress(RuntimeError):
                    self._loop = asyncio.get_running_loop()
                self._thread = threading.Thread(target=self._write_all, name="journal-writer", daemon=False)
                self._thread.start()

    def _write_all(self) -> None:
        """The writer thread: one job at a time, in order, until stopped or idle."""
        assert self._file is not None
        while True:
            try:
                job = self._queue.get(timeout=IDLE_CHECK_S)
            except queue.Empty:
                # The interpreter stops the main thread before it joins the others: nobody will close us.
                if threading.main_thread().is_alive():
                    continue
                with self._lock:
                    if self._queue.empty():  # decided under the lock, so _enqueue starts a new thread if needed
                        self._thread = None
                        self._file.close()
                        return
                continue
            if isinstance(job, _Stop):
                self._file.close()
                with self._lock:
                    self._thread = None
                return
            if isinstance(job, _Marker):
                job.reached()
                continue
            try:
                self._file.append(job)
            except Exception as exc:  # the writer must outlive one bad record; reported, and the next is tried
                self._failed(exc, job)

    def _failed(self, exc: Exception, record: Mapping[str, Any]) -> None:
        self.failures += 1
        log.debug("session record %s not kept: %s", record.get("kind"), exc)
        if self.failures > 1 or self._on_error is None:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody left to tell
                loop.call_soon_threadsafe(self._on_error, exc)
            return
        self._on_error(exc)


def _stamp_start(record: dict[str, Any], started_at: float | None) -> None:
    if started_at is not None:
        record["started_at"] = iso_utc(datetime.fromtimestamp(started_at, UTC))


def _resolve_threadsafe(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
        loop.call_soon_threadsafe(resolve)
