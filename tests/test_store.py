"""Session files: durability (fsync per item, a real SIGKILL), privacy (modes, redaction), reading and export."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from voicecoach import errors
from voicecoach.store import (
    SessionStore,
    cmd_sessions_export,
    cmd_sessions_list,
    cmd_sessions_show,
    default_root,
)

SRC = Path(__file__).resolve().parents[1] / "src"
API_KEY = "sk-proj-abcdef0123456789SECRET"
EK = "ek_68af296e8e408191a1120ab6383263c2"


class Clock:
    """A settable clock: every reading is one second after the last, so order never depends on the machine."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 24, 6, 37, 29, tzinfo=UTC))


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SessionStore:
    return SessionStore(tmp_path / "data" / "sessions", clock=clock)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    yield calls


def utterance(key: str, text: str) -> dict[str, object]:
    return {"kind": "utterance", "key": key, "role": "user", "text": text}


def hint(key: str, text: str, tier: str = "quick", interrupted: bool = False) -> dict[str, object]:
    return {"kind": "hint", "key": key, "tier": tier, "text": text, "interrupted": interrupted}


def test_append_load_round_trip(store: SessionStore) -> None:
    with store.create({"model": "gpt-realtime-1.5", "title": "standup"}) as session:
        session.append(utterance("item_1", "What is our plan? Good question."))
        session.append(hint("resp_1", "Say the plan in one line."))
        session.append({"kind": "interrupt", "key": "int_1", "why": "phrase"})
    records = store.load(session.id)
    header, *items = records
    assert header["kind"] == "session" and header["id"] == session.id
    assert header["model"] == "gpt-realtime-1.5" and header["started_at"] == "2026-11-24T06:37:30.000Z"
    assert [(r["kind"], r["key"]) for r in items] == [
        ("utterance", "item_1"),
        ("hint", "resp_1"),
        ("interrupt", "int_1"),
    ]
    assert items[0]["text"] == "What is our plan? Good question."
    assert items[1]["tier"] == "quick" and items[1]["interrupted"] is False
    assert all(r["t"].endswith("Z") for r in items)
    assert session.path == store.root / f"{session.id}.jsonl"


def test_session_id_is_sortable_utc_time_plus_suffix(store: SessionStore) -> None:
    with store.create({}) as session:
        assert session.id.startswith("20261124-063730-")
        assert len(session.id) == len("20261124-063729-ab12")


def test_given_time_is_kept(store: SessionStore) -> None:
    with store.create({}) as session:
        session.append({**utterance("item_1", "hi"), "t": "2026-11-24T06:40:00.000Z"})
    assert store.load(session.id)[1]["t"] == "2026-11-24T06:40:00.000Z"


def test_every_append_is_fsynced_before_it_returns(store: SessionStore, fsyncs: list[int]) -> None:
    with store.create({}) as session:
        after_create = len(fsyncs)
        for n in range(5):
            session.append(utterance(f"item_{n}", f"line {n}"))
            assert len(fsyncs) == after_create + n + 1


# 0: nothing masked, so a too-wide mode passed to os.open would show; 0o277: the mode given to os.open/mkdir is
# cut down to read-only, so only an explicit chmod gets exactly 0600 / 0700.
@pytest.mark.parametrize("umask", [0, 0o277])
def test_modes_are_private_whatever_the_umask(store: SessionStore, umask: int) -> None:
    old = os.umask(umask)
    try:
        with store.create({}) as session:
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(store.root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(session.path).st_mode) == 0o600


def test_torn_last_line_and_garbage_are_skipped(store: SessionStore) -> None:
    with store.create({}) as session:
        session.append(utterance("item_1", "first"))
        session.append(utterance("item_2", "second"))
    with session.path.open("ab") as fh:
        fh.write(b'{"kind":"utterance","key":"item_3","te')  # the process died mid-line
    lines = session.path.read_bytes().split(b"\n")
    lines.insert(2, b"\xff\xfe not json")
    lines.insert(3, b"[1, 2]")
    session.path.write_bytes(b"\n".join(lines))
    assert [r.get("key") for r in store.load(session.id)] == [None, "item_1", "item_2"]


def test_duplicate_key_is_written_once(store: SessionStore, fsyncs: list[int]) -> None:
    with store.create({}) as session:
        session.append(hint("resp_1", "first version"))
        before = len(fsyncs)
        session.append(hint("resp_1", "replayed after a reconnect"))
        assert len(fsyncs) == before
        session.append({"kind": "interrupt", "why": "key"})  # no key: nothing to dedupe on, always written
        session.append({"kind": "interrupt", "why": "key"})
    items = store.load(session.id)[1:]
    assert [r.get("text") for r in items if r["kind"] == "hint"] == ["first version"]
    assert len(session.path.read_text().splitlines()) == 4


def test_append_after_close_is_dropped(store: SessionStore) -> None:
    session = store.create({})
    session.close()
    session.close()
    session.append(utterance("item_1", "late"))
    assert len(store.load(session.id)) == 1


def test_record_without_kind_is_a_programming_error(store: SessionStore) -> None:
    with store.create({}) as session, pytest.raises(ValueError, match="kind"):
        session.append({"text": "no kind"})


def test_list_is_newest_first_with_counts_and_titles(store: SessionStore) -> None:
    ids = []
    for n in range(3):
        with store.create({"title": f"meeting {n}"} if n != 1 else {}) as session:
            for k in range(n):
                session.append(utterance(f"item_{k}", f"said   {k}\nby me"))
        ids.append(session.id)
    (store.root / "notes.txt").write_text("not a session")
    summaries = store.list()
    assert [s.id for s in summaries] == ids[::-1]
    assert [s.items for s in summaries] == [2, 1, 0]
    assert [s.title for s in summaries] == ["meeting 2", "said 0 by me", "meeting 0"]
    assert summaries[0].started_at > summaries[1].started_at > summaries[2].started_at
    table = cmd_sessions_list(store).splitlines()
    assert table[0].split() == ["ID", "STARTED", "ITEMS", "TITLE"]
    assert [row.split()[0] for row in table[1:]] == ids[::-1]
    assert table[1].endswith("2  meeting 2") and "UTC" in table[1]


def test_reading_an_empty_store_creates_nothing(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "absent")
    assert store.list() == []
    assert cmd_sessions_list(store).startswith("no sessions yet")
    assert not (tmp_path / "absent").exists()


def test_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICECOACH_DATA_DIR", str(tmp_path / "vc"))
    assert default_root() == tmp_path / "vc" / "sessions"
    assert SessionStore().root == tmp_path / "vc" / "sessions"


@pytest.mark.parametrize("bad", ["20261124-063729-ab12", "../../etc/passwd", "latest", ""])
def test_unknown_id_is_a_one_line_usage_error(store: SessionStore, bad: str) -> None:
    with pytest.raises(errors.UsageError) as info:
        store.load(bad)
    assert "voicecoach sessions list" in str(info.value)
    assert "\n" not in str(info.value)


def test_export_markdown_and_show(store: SessionStore) -> None:
    with store.create({}) as session:
        session.append({**utterance("item_1", "How do we scale this?\nGood question."), "t": "2026-11-24T06:38:01Z"})
        session.append({**hint("resp_1", "Shard by tenant."), "t": "2026-11-24T06:38:03Z"})
        session.append({**hint("resp_2", "Step back: ...", tier="full", interrupted=True), "t": "2026-11-24T06:39:00Z"})
        session.append({"kind": "interrupt", "key": "i1", "why": "phrase 'got it'", "t": "2026-11-24T06:39:02Z"})
    md = store.export(session.id, "md")
    lines = md.splitlines()
    assert lines[0] == f"# voicecoach session {session.id} (2026-11-24 06:37:30 UTC)"
    assert "- 06:38:01 **You:** How do we scale this? Good question." in lines
    assert "- 06:38:03 **Coach (quick hint):** Shard by tenant." in lines
    assert "- 06:39:00 **Coach (full guidance):** Step back: ... _(interrupted)_" in lines
    assert "- 06:39:02 _Interrupted (phrase 'got it')_" in lines
    assert cmd_sessions_export(store, session.id, "md") == md
    shown = cmd_sessions_show(store, session.id)
    assert "06:38:03  Coach (quick hint): Shard by tenant." in shown
    assert shown.splitlines()[0].endswith("4 items")


def test_export_json(store: SessionStore) -> None:
    with store.create({"model": "m"}) as session:
        session.append(utterance("item_1", "hello"))
    doc = json.loads(store.export(session.id, "json"))
    assert doc["id"] == session.id
    assert doc["meta"] == {"model": "m"}
    assert [i["text"] for i in doc["items"]] == ["hello"]
    assert "\n  " in store.export(session.id, "json")  # pretty-printed


def test_secrets_never_reach_the_file(store: SessionStore) -> None:
    with store.create({"api_key": API_KEY, "note": f"key {API_KEY}"}) as session:
        session.append(utterance("item_1", f"my key is {API_KEY} and the ek is {EK}"))
        session.append({"kind": "interrupt", "key": "i1", "why": "x", "authorization": f"Bearer {EK}"})
    raw = session.path.read_text()
    assert API_KEY not in raw and EK not in raw and "abcdef0123456789" not in raw
    assert "[redacted]" in raw
    assert store.load(session.id)[1]["text"] == "my key is [redacted] and the ek is [redacted]"


def test_meta_cannot_override_the_header(store: SessionStore) -> None:
    with store.create({"kind": "utterance", "id": "other", "started_at": "never"}) as session:
        pass
    header = store.load(session.id)[0]
    assert (header["kind"], header["id"]) == ("session", session.id)
    assert header["started_at"] != "never"


def test_sigkill_loses_nothing_appended(tmp_path: Path) -> None:
    """A real crash: the child appends items, reports each after append() returns, then SIGKILLs itself."""
    root = tmp_path / "sessions"
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from voicecoach.store import SessionStore
        session = SessionStore(Path({str(root)!r})).create({{"title": "crash"}})
        print(session.id, flush=True)
        for n in range(40):
            session.append({{"kind": "utterance", "key": f"item_{{n}}", "role": "user", "text": "x" * 2000}})
            print(n, flush=True)
            if n == 24:
                os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    session_id, *acked = proc.stdout.split()
    assert acked[-1] == "24"  # the child got as far as the kill
    keys = [r["key"] for r in SessionStore(root).load(session_id)[1:]]
    assert keys == [f"item_{n}" for n in range(25)]
    assert SessionStore(root).list()[0].title == "crash"
