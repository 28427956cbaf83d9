"""Session files: lazy creation, durability (fsync per item, a real SIGKILL), privacy (modes, redaction), reading,
ids (prefixes, `last`), the run's facts (start, end, duration, cost, model), export and delete."""

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
    cmd_sessions_delete,
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


def test_nothing_is_on_disk_until_the_first_record(store: SessionStore, fsyncs: list[int]) -> None:
    session = store.create({"model": "m"})
    assert not session.exists and not store.root.exists() and fsyncs == []
    session.append(utterance("item_1", "hi"))
    assert session.exists and session.path.is_file()
    header, item = store.load(session.id)
    assert header["kind"] == "session" and header["started_at"] == "2026-11-24T06:37:30.000Z"  # create(), not append
    assert item["key"] == "item_1" and item["t"] == "2026-11-24T06:37:31.000Z"
    session.close()


def test_a_file_closed_before_any_record_never_exists(store: SessionStore) -> None:
    with store.create({}) as session:
        pass
    session.append(utterance("item_1", "late"))  # after close: dropped, and still nothing created
    assert not session.exists and not session.path.exists() and not store.root.exists()
    assert store.list() == []


def test_every_append_is_fsynced_before_it_returns(store: SessionStore, fsyncs: list[int]) -> None:
    with store.create({}) as session:
        session.append(utterance("item_first", "makes the file: header, directory entry, record"))
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
            session.append(utterance("item_1", "hi"))
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
    session.append(utterance("item_1", "kept"))
    session.close()
    session.close()
    session.append(utterance("item_2", "late"))
    assert [r.get("key") for r in store.load(session.id)] == [None, "item_1"]


def test_record_without_kind_is_a_programming_error(store: SessionStore) -> None:
    with store.create({}) as session, pytest.raises(ValueError, match="kind"):
        session.append({"text": "no kind"})


def test_list_is_newest_first_with_counts_and_titles(store: SessionStore) -> None:
    ids = []
    for n in range(3):
        with store.create({"title": f"meeting {n}"} if n != 1 else {}) as session:
            for k in range(n):
                session.append(utterance(f"item_{k}", f"said   {k}\nby me"))
            session.append({"kind": "interrupt", "key": "i", "why": "key"})
        ids.append(session.id)
    (store.root / "notes.txt").write_text("not a session")
    summaries = store.list()
    assert [s.id for s in summaries] == ids[::-1]
    assert [s.items for s in summaries] == [3, 2, 1]
    assert [s.title for s in summaries] == ["meeting 2", "said 0 by me", "meeting 0"]
    assert summaries[0].started_at > summaries[1].started_at > summaries[2].started_at
    table = cmd_sessions_list(store).splitlines()
    assert table[0].split() == ["ID", "STARTED", "(UTC)", "DURATION", "COST", "ITEMS", "MODEL", "TITLE"]
    assert [row.split()[0] for row in table[1:4]] == ids[::-1]
    assert table[1].endswith("3  -      meeting 2")


def test_reading_an_empty_store_creates_nothing(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "absent")
    assert store.list() == []
    assert cmd_sessions_list(store).startswith("no sessions yet")
    assert not (tmp_path / "absent").exists()


def test_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICECOACH_DATA_DIR", str(tmp_path / "vc"))
    assert default_root() == tmp_path / "vc" / "sessions"
    assert SessionStore().root == tmp_path / "vc" / "sessions"


@pytest.mark.parametrize("bad", ["20261124-063729-ab12", "../../etc/passwd", "latest", "", "2027", ".."])
def test_unknown_id_is_a_one_line_usage_error(store: SessionStore, bad: str) -> None:
    with store.create({}) as session:
        session.append(utterance("item_1", "hi"))
    (store.root.parent / "etc").mkdir()
    with pytest.raises(errors.UsageError) as info:
        store.load(bad)
    assert "voicecoach sessions list" in str(info.value) and str(store.root) in str(info.value)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_export_markdown_and_show(store: SessionStore) -> None:
    with store.create({}) as session:
        session.append({**utterance("item_1", "How do we scale this?\nGood question."), "t": "2026-11-24T06:38:01Z"})
        session.append({**hint("resp_1", "Shard by tenant."), "t": "2026-11-24T06:38:03Z"})
        session.append({**hint("resp_2", "Step back: ...", tier="full", interrupted=True), "t": "2026-11-24T06:39:00Z"})
        session.append({"kind": "interrupt", "key": "i1", "why": "phrase 'got it'", "t": "2026-11-24T06:39:02Z"})
    md = store.export(session.id, "md")
    lines = md.splitlines()
    assert lines[0] == f"# voicecoach session {session.id} (2026-11-24 06:37:30 UTC)"
    assert "- Ended: 2026-11-24 06:39:02 UTC, ended abruptly (killed or crashed; the time of its last record)" in lines
    assert "- 06:38:01 **You:** How do we scale this? Good question." in lines
    assert "- 06:38:03 **Coach (quick hint):** Shard by tenant." in lines
    assert "- 06:39:00 **Coach (full guidance):** Step back: ... _(interrupted)_" in lines
    assert "- 06:39:02 _Interrupted (phrase 'got it')_" in lines
    assert cmd_sessions_export(store, session.id, "md") == md.rstrip("\n")  # the CLI prints it with its newline
    shown = cmd_sessions_show(store, session.id)
    assert "06:38:03  Coach (quick hint): Shard by tenant." in shown
    assert shown.splitlines()[0].endswith("4 items")


def test_show_and_export_label_both_speakers_in_the_order_spoken(store: SessionStore) -> None:
    """Records are written as transcripts finish; the other side's question finished after the answer."""
    with store.create({}) as session:
        answer = {**utterance("item_2", "Let me think."), "started_at": "2026-11-24T06:38:04Z"}
        session.append({**answer, "t": "2026-11-24T06:38:06Z"})
        question = {**utterance("them:item_1", "Why this role?"), "speaker": "them", "label": "Interviewer"}
        session.append({**question, "started_at": "2026-11-24T06:38:01Z", "t": "2026-11-24T06:38:07Z"})
        session.append({**utterance("them:item_3", "Go on."), "speaker": "them", "t": "2026-11-24T06:38:09Z"})
    shown = cmd_sessions_show(store, session.id).splitlines()[2:]
    assert shown == [
        "06:38:01  Interviewer: Why this role?",
        "06:38:04  You: Let me think.",
        "06:38:09  Them: Go on.",
    ]
    md = store.export(session.id, "md")
    assert md.index("**Interviewer:** Why this role?") < md.index("**You:** Let me think.")
    doc = json.loads(store.export(session.id, "json"))
    assert [(i.get("speaker"), i.get("label")) for i in doc["items"]] == [
        ("them", "Interviewer"),
        (None, None),
        ("them", None),
    ]


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
        session.append(utterance("item_1", "hi"))
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


# --- the run's facts: start, end, duration, cost, model -------------------------------------------------------


def summary(**fields: object) -> dict[str, object]:
    return {"kind": "summary", "key": "summary", **fields}


def test_export_carries_start_end_duration_cost_and_model(store: SessionStore) -> None:
    with store.create({"model": "gpt-realtime-1.5"}) as session:
        session.append(utterance("item_1", "hello"))
        session.append(summary(ended_at="2026-11-24T06:40:00.000Z", duration_s=150.0, cost_usd=0.0123, reason="quit"))
    doc = json.loads(store.export(session.id, "json"))
    assert doc["model"] == "gpt-realtime-1.5"
    assert (doc["started_at"], doc["ended_at"]) == ("2026-11-24T06:37:30.000Z", "2026-11-24T06:40:00.000Z")
    assert (doc["duration_s"], doc["cost_usd"], doc["ended_abruptly"], doc["end_reason"]) == (
        150.0,
        0.0123,
        False,
        "quit",
    )
    assert [i["kind"] for i in doc["items"]] == ["utterance"]  # the summary is not a transcript item
    md = store.export(session.id, "md").splitlines()
    assert "- Model: gpt-realtime-1.5" in md
    assert "- Started: 2026-11-24 06:37:30 UTC" in md
    assert "- Ended: 2026-11-24 06:40:00 UTC (quit)" in md
    assert "- Duration: 2 min 30 s" in md
    assert "- Cost: $0.0123 (estimated)" in md
    assert cmd_sessions_show(store, session.id).splitlines()[1] == (
        "model gpt-realtime-1.5; ended 2026-11-24 06:40:00 UTC (quit); 2 min 30 s; $0.0123"
    )
    row = cmd_sessions_list(store).splitlines()[1].split()
    assert row[3:7] == ["2m30s", "$0.0123", "1", "gpt-realtime-1.5"]


def test_a_killed_run_exports_with_its_last_record_as_the_end(store: SessionStore) -> None:
    with store.create({"model": "m"}) as session:
        session.append({**utterance("item_1", "hello"), "t": "2026-11-24T06:38:00.000Z"})
        session.append({**hint("resp_1", "say hi"), "t": "2026-11-24T06:38:45.500Z"})
    with session.path.open("ab") as fh:
        fh.write(b'{"kind":"summary","ended_at":"2026-11-24T')  # torn: the process died writing it
    doc = json.loads(store.export(session.id, "json"))
    assert doc["ended_abruptly"] is True and doc["summary"] is None
    assert (doc["ended_at"], doc["duration_s"], doc["cost_usd"]) == ("2026-11-24T06:38:45.500Z", 75.5, None)
    md = store.export(session.id, "md")
    assert "ended abruptly" in md and "- Cost: unknown" in md and "- Duration: 1 min 16 s" in md
    table = cmd_sessions_list(store).splitlines()
    assert table[1].split()[3:5] == ["1m16s?", "-"]
    assert table[-1].startswith("? ended abruptly")


@pytest.mark.parametrize("cost", ["0.5", True, None, float("nan")])
def test_a_summary_with_a_strange_cost_says_unknown(store: SessionStore, cost: object) -> None:
    with store.create({}) as session:
        session.append(utterance("item_1", "hello"))
        session.append(summary(cost_usd=cost, ended_at="2026-11-24T06:40:00Z"))
    doc = json.loads(store.export(session.id, "json"))
    assert doc["cost_usd"] is None and doc["ended_abruptly"] is False and doc["duration_s"] == 150.0


# --- ids: whole, unique prefix, `last` ------------------------------------------------------------------------


def make(store: SessionStore, n: int) -> list[str]:
    ids = []
    for k in range(n):
        with store.create({}) as session:
            session.append(utterance(f"item_{k}", f"run {k}"))
        ids.append(session.id)
    return ids


def test_resolve_whole_id_prefix_and_last(store: SessionStore) -> None:
    first, second = make(store, 2)  # 06:37:30 and 06:37:32: they differ in the last digit of the time
    assert store.resolve(first) == first
    assert store.resolve(first[:15]) == first  # "20261124-063730"
    assert store.resolve(second[:16]) == second
    assert store.resolve("last") == second
    assert store.load("last")[1]["text"] == "run 1"


def test_an_ambiguous_prefix_lists_the_candidates_on_one_line(store: SessionStore) -> None:
    ids = make(store, 3)
    with pytest.raises(errors.UsageError) as info:
        store.resolve("2026")
    message = str(info.value)
    assert "ambiguous" in message and "3 sessions" in message and "\n" not in message
    assert all(i in message for i in ids)
    assert info.value.exit_code == 2


def test_last_in_the_same_second_is_the_later_start(tmp_path: Path) -> None:
    moments = iter(
        [datetime(2026, 1, 1, 9, 0, 0, 900_000, tzinfo=UTC), datetime(2026, 1, 1, 9, 0, 0, 100_000, tzinfo=UTC)]
    )
    store = SessionStore(tmp_path / "s", clock=lambda: next(moments, datetime(2026, 1, 1, 9, 0, 5, tzinfo=UTC)))
    late = store.create({})  # started at .900
    early = store.create({})  # started at .100
    for session in (early, late):
        with session:
            session.append(utterance("item_1", "x"))
    assert store.resolve("last") == late.id


def test_last_with_no_sessions(store: SessionStore) -> None:
    with pytest.raises(errors.UsageError, match="no sessions yet"):
        store.resolve("last")


# --- delete ---------------------------------------------------------------------------------------------------


def test_delete_one_and_the_empty_ones(store: SessionStore) -> None:
    spoken = make(store, 1)[0]
    with store.create({}) as quiet:
        quiet.append({"kind": "interrupt", "key": "i", "why": "key"})
        quiet.append(summary(cost_usd=0.0))
    (store.root / "20261124-000000-abcd.jsonl").write_bytes(b"")  # a file of a crash before its header
    assert cmd_sessions_delete(store, None, empty=True).splitlines() == [
        f"deleted 20261124-000000-abcd ({store.root / '20261124-000000-abcd.jsonl'})",
        f"deleted {quiet.id} ({quiet.path})",
    ]
    assert store.ids() == [spoken]
    assert cmd_sessions_delete(store, None, empty=True) == f"no empty sessions in {store.root}"
    assert cmd_sessions_delete(store, "last", empty=False) == f"deleted {spoken} ({store.root / spoken}.jsonl)"
    assert store.ids() == []


def test_delete_refuses_an_ambiguous_prefix_and_a_running_session(store: SessionStore) -> None:
    finished = make(store, 2)
    with pytest.raises(errors.UsageError, match="ambiguous"):
        store.delete("2026")
    assert store.ids() == finished
    running = store.create({})
    running.append({"kind": "interrupt", "key": "i", "why": "key"})  # empty, but its writer holds the lock
    with pytest.raises(errors.UsageError, match="still being written"):
        store.delete(running.id)
    assert "a running voicecoach is writing it" in cmd_sessions_delete(store, None, empty=True)
    assert running.path.exists()
    running.close()  # the lock goes with the descriptor
    assert store.delete_empty() == ([running.path], [])


# --- export to a file -----------------------------------------------------------------------------------------


def test_export_to_a_file_refuses_to_overwrite_without_force(store: SessionStore, tmp_path: Path) -> None:
    [session_id] = make(store, 1)
    out = tmp_path / "out.md"
    assert cmd_sessions_export(store, "last", "md", out) == f"exported session {session_id} (md) to {out}"
    assert out.read_text() == store.export(session_id, "md")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    out.write_text("mine")
    with pytest.raises(errors.UsageError) as info:
        cmd_sessions_export(store, "last", "json", out)
    assert "already exists" in str(info.value) and "--force" in str(info.value) and "\n" not in str(info.value)
    assert out.read_text() == "mine"
    cmd_sessions_export(store, "last", "json", out, force=True)
    assert json.loads(out.read_text())["id"] == session_id
    with pytest.raises(errors.UsageError, match="cannot write the export to"):
        cmd_sessions_export(store, "last", "md", tmp_path / "no" / "dir.md")
    assert cmd_sessions_export(store, "last", "md", Path("-")) == store.export(session_id, "md").rstrip("\n")
