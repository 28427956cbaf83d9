"""The journal: first final wins, records in order, the caller never waits for the disk, close waits for the
writer, a run that wrote nothing leaves no file, and a real SIGKILL keeps what the writer had processed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from voicecoach.errors import UsageError
from voicecoach.journal import Journal
from voicecoach.store import SessionStore

SRC = Path(__file__).resolve().parents[1] / "src"
META = {"model": "gpt-realtime-1.5", "base_url": "http://127.0.0.1:8765/v1"}


class Clock:
    """Every reading is one second after the last."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 6, 37, 29, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "sessions", clock=Clock())


class BlockedDisk:
    """``os.fsync`` that waits for :attr:`release`; it refuses to run on the test's own thread."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.caller = threading.get_ident()
        self._real = os.fsync

    def __call__(self, fd: int) -> None:
        if threading.get_ident() == self.caller:
            raise AssertionError("fsync ran on the caller's thread: the caller waited for the disk")
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise AssertionError("the test never released the disk")
        self._real(fd)


@pytest.fixture
def blocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[BlockedDisk]:
    disk = BlockedDisk()
    monkeypatch.setattr(os, "fsync", disk)
    yield disk
    disk.release.set()  # never leave a writer thread stuck behind a failed test


def records(path: Path | None) -> list[dict[str, Any]]:
    assert path is not None, "the journal made no file"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_caller_never_waits_for_a_blocked_disk(store: SessionStore, blocked: BlockedDisk) -> None:
    journal = Journal(store, META)
    assert journal.utterance("item_1", "What is the plan? Good question.")
    assert blocked.entered.wait(timeout=10), "the writer never reached the disk"
    # The writer is now stuck in fsync. Every call below must return without it.
    assert journal.hint("resp_1", "quick", "Say the plan in one line.", interrupted=False)
    journal.interrupt("key")
    assert journal.utterance("item_2", "Next point.")
    assert not blocked.release.is_set()
    assert journal.path is None  # the header's fsync has not returned: the file does not count as made yet
    blocked.release.set()
    assert journal.close_sync({"cost_usd": 0.001}, timeout=30)
    kinds = [(r["kind"], r.get("key")) for r in records(journal.path)]
    assert kinds == [
        ("session", None),
        ("utterance", "item_1"),
        ("hint", "resp_1"),
        ("interrupt", "interrupt-1"),
        ("utterance", "item_2"),
        ("summary", "summary"),
    ]


async def test_close_waits_for_pending_records(store: SessionStore, blocked: BlockedDisk) -> None:
    journal = Journal(store, META)
    for n in range(5):
        journal.utterance(f"item_{n}", f"line {n}")
    closing = asyncio.create_task(journal.aclose({"cost_usd": 0.5, "reason": "quit"}))
    assert await asyncio.to_thread(blocked.entered.wait, 10)
    await asyncio.sleep(0.05)  # the loop keeps running meanwhile (this sleep returns) and close is still waiting
    assert not closing.done()
    blocked.release.set()
    async with asyncio.timeout(30):
        await closing
    kept = records(journal.path)
    assert [r.get("text") for r in kept if r["kind"] == "utterance"] == [f"line {n}" for n in range(5)]
    assert kept[-1]["kind"] == "summary" and kept[-1]["cost_usd"] == 0.5 and kept[-1]["reason"] == "quit"
    assert not any(t.name == "journal-writer" and t.is_alive() for t in threading.enumerate())


async def test_first_final_wins_and_nothing_is_written_twice(store: SessionStore) -> None:
    journal = Journal(store, META)
    assert journal.utterance("item_1", "  first  ")
    assert not journal.utterance("item_1", "replayed after a reconnect")
    assert journal.hint("resp_1", "full", "the whole hint", interrupted=False)
    assert not journal.hint("resp_1", "full", "the whole", interrupted=True)  # cut off later: the first stays
    assert not journal.utterance("item_2", "   ")  # empty is not an item, and does not claim the id
    assert journal.utterance("item_2", "said after all")
    assert journal.utterance("item_1", "the other side's own item_1", speaker="them")
    assert journal.hint("item_3", "quick", "a hint and an utterance may share an id", interrupted=False)
    await journal.aclose({})
    items = [r for r in records(journal.path) if r["kind"] in ("utterance", "hint")]
    assert [(r["kind"], r["key"], r["text"]) for r in items] == [
        ("utterance", "item_1", "first"),
        ("hint", "resp_1", "the whole hint"),
        ("utterance", "item_2", "said after all"),
        ("utterance", "them:item_1", "the other side's own item_1"),
        ("hint", "item_3", "a hint and an utterance may share an id"),
    ]
    assert items[1]["interrupted"] is False and items[1]["tier"] == "full"
    assert items[3]["speaker"] == "them" and "speaker" not in items[0]


async def test_the_other_side_keeps_its_label_and_every_item_its_start(store: SessionStore) -> None:
    journal = Journal(store, META)
    spoken = datetime(2026, 11, 24, 6, 30, 0, tzinfo=UTC).timestamp()
    assert journal.utterance("item_1", "Good question.", started_at=spoken + 3)
    assert journal.utterance("item_1", "Why us?", speaker="them", label=" Interviewer ", started_at=spoken)
    assert journal.hint("resp_1", "quick", "Say why.", interrupted=False, started_at=spoken + 5)
    await journal.aclose({})
    you, them, hint = [r for r in records(journal.path) if r["kind"] in ("utterance", "hint")]
    assert (them["speaker"], them["label"], them["started_at"]) == ("them", "Interviewer", "2026-11-24T06:30:00.000Z")
    assert "label" not in you and you["started_at"] == "2026-11-24T06:30:03.000Z"
    assert hint["started_at"] == "2026-11-24T06:30:05.000Z"
    shown = store.export("last", "md").splitlines()
    said = [line for line in shown if line.startswith("- 06:30")]
    assert said == [
        "- 06:30:00 **Interviewer:** Why us?",
        "- 06:30:03 **You:** Good question.",
        "- 06:30:05 **Coach (quick hint):** Say why.",
    ]


async def test_records_keep_todays_shape_and_order(store: SessionStore) -> None:
    journal = Journal(store, META)
    spoken = datetime(2026, 11, 24, 6, 38, 0, 250_000, tzinfo=UTC).timestamp()
    for n in range(30):
        if n % 3 == 0:
            journal.utterance(f"item_{n}", f"u{n}", started_at=spoken)
        elif n % 3 == 1:
            journal.hint(f"resp_{n}", "quick", f"h{n}", interrupted=n % 2 == 0)
        else:
            journal.interrupt(f"phrase {n}")
    await journal.drain()
    assert journal.path is not None and journal.id == journal.path.stem
    kept = records(journal.path)
    assert kept[0] == {"kind": "session", "id": journal.id, **META, "started_at": "2026-11-24T06:37:30.000Z"}
    assert [r.get("text", r.get("why")) for r in kept[1:]] == [
        f"u{n}" if n % 3 == 0 else f"h{n}" if n % 3 == 1 else f"phrase {n}" for n in range(30)
    ]
    assert set(kept[1]) == {"kind", "key", "role", "text", "t", "started_at"} and kept[1]["role"] == "user"
    assert kept[1]["started_at"] == "2026-11-24T06:38:00.250Z"
    assert set(kept[2]) == {"kind", "key", "tier", "text", "interrupted", "t"}
    assert set(kept[3]) == {"kind", "key", "why", "t"}
    # Stamped when offered (one clock tick each), not when the writer got to them.
    assert [r["t"] for r in kept[1:4]] == [
        "2026-11-24T06:37:31.000Z",
        "2026-11-24T06:37:32.000Z",
        "2026-11-24T06:37:33.000Z",
    ]
    await journal.aclose({})


async def test_a_run_that_wrote_nothing_leaves_no_file(store: SessionStore) -> None:
    journal = Journal(store, META)
    await journal.drain()
    await journal.aclose({"cost_usd": 0.0, "reason": "connect failed"})
    assert journal.path is None
    assert not store.root.exists()
    assert not journal.utterance("item_1", "after close")


async def test_the_summary_carries_end_duration_and_cost(store: SessionStore) -> None:
    journal = Journal(store, META)
    journal.utterance("item_1", "hello")
    await journal.aclose({"cost_usd": 0.0421, "reason": "quit", "links": 2})
    await journal.aclose({"cost_usd": 9.0})  # idempotent: one summary
    doc = json.loads(store.export("last", "json"))
    assert doc["model"] == META["model"]
    assert (doc["started_at"], doc["ended_at"]) == ("2026-11-24T06:37:30.000Z", "2026-11-24T06:37:32.000Z")
    assert (doc["duration_s"], doc["cost_usd"], doc["end_reason"]) == (2.0, 0.0421, "quit")
    assert doc["summary"]["links"] == 2 and doc["ended_abruptly"] is False


async def test_without_a_store_it_still_dedupes_and_writes_nothing(tmp_path: Path) -> None:
    journal = Journal(None, META)
    assert journal.utterance("item_1", "hi") and not journal.utterance("item_1", "hi")
    journal.interrupt("key")
    await journal.aclose({"cost_usd": 1.0})
    assert journal.path is None and list(tmp_path.iterdir()) == []


async def test_a_disk_failure_is_reported_once_and_later_records_are_tried(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = SessionStore(tmp_path / "file" / "sessions", clock=Clock())
    errors: list[Exception] = []
    journal = Journal(store, META, on_error=errors.append)
    journal.utterance("item_1", "one")
    journal.utterance("item_2", "two")
    await journal.drain()
    assert len(errors) == 1 and isinstance(errors[0], UsageError)
    assert "cannot create the sessions directory" in str(errors[0])
    assert journal.failures == 2 and journal.path is None
    await journal.aclose({})


def test_a_journal_nobody_closed_does_not_hold_the_process_open(tmp_path: Path) -> None:
    """The writer thread is not a daemon (queued records must not be lost at exit), yet a forgotten close must not
    hang the interpreter: the child offers records, never closes, and returns from its main."""
    root = tmp_path / "sessions"
    child = textwrap.dedent(
        f"""
        from pathlib import Path
        from voicecoach.journal import Journal
        from voicecoach.store import SessionStore

        journal = Journal(SessionStore(Path({str(root)!r})), {{"model": "m"}})
        for n in range(20):
            journal.utterance(f"item_{{n}}", "z" * 2000)
        print(journal.path is None or journal.path.stem, flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    [path] = root.glob("*.jsonl")
    keys = [r["key"] for r in SessionStore(root).load(path.stem)[1:]]
    assert keys == [f"item_{n}" for n in range(20)]  # every queued record was written before the exit


def test_sigkill_keeps_every_record_the_writer_processed(tmp_path: Path) -> None:
    """A real crash: the child waits until 20 records are on disk, says so, offers 20 more and SIGKILLs itself."""
    root = tmp_path / "sessions"
    child = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from pathlib import Path
        from voicecoach.journal import Journal
        from voicecoach.store import SessionStore

        async def main():
            journal = Journal(SessionStore(Path({str(root)!r})), {{"model": "m"}})
            for n in range(20):
                journal.utterance(f"item_{{n}}", "x" * 2000)
            await journal.drain()
            print(journal.id, flush=True)
            for n in range(20, 40):
                journal.utterance(f"item_{{n}}", "y" * 2000)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    session_id = proc.stdout.strip()
    store = SessionStore(root)
    keys = [r["key"] for r in store.load(session_id)[1:]]
    assert keys[:20] == [f"item_{n}" for n in range(20)]
    assert keys == [f"item_{n}" for n in range(len(keys))]  # whatever else made it is in order, none twice
    assert json.loads(store.export(session_id, "json"))["ended_abruptly"] is True
