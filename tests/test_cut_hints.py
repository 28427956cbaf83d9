"""Hints cut short in the session file: the played words and all that was generated, one item however written;
old files without the new fields read as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from voicecoach.journal import Journal
from voicecoach.store import SessionStore, cmd_sessions_show
from voicecoach.transcript import items_of

META = {"model": "gpt-realtime-1.5"}
WHOLE = "Start with the pilot in two regions for four weeks."


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 6, 37, 29, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "sessions", clock=Clock())


async def test_a_hint_kept_whole_then_cut_reads_as_the_played_words(store: SessionStore) -> None:
    journal = Journal(store, META)
    journal.utterance("item_1", "Walk me through the rollout.")
    assert journal.hint("resp_1", "full", WHOLE, interrupted=False)  # its transcript finished first
    assert journal.hint_cut(
        "resp_1", "full", "Start with the pilot", generated_text=WHOLE, played_ms=1612.4, trim="proportional"
    )
    assert not journal.hint_cut("resp_1", "full", "x", generated_text=WHOLE, played_ms=1, trim="timing")  # once
    await journal.aclose({})
    assert journal.path is not None
    lines = [json.loads(line) for line in journal.path.read_text().splitlines()]
    # On disk: the first record as it was fsynced, then an amendment naming it.
    first, amendment = (r for r in lines if r["kind"] == "hint")
    assert (first["key"], first["text"], first["interrupted"]) == ("resp_1", WHOLE, False)
    assert (amendment["key"], amendment["amends"], amendment["text"]) == (
        "resp_1#cut",
        "resp_1",
        "Start with the pilot",
    )
    # Read back: one hint item in the first one's place, with the played words and everything generated.
    records = store.load(journal.path.stem)
    items = items_of(records)
    assert [i["kind"] for i in items] == ["utterance", "hint"]
    hint = items[1]
    assert (hint["key"], hint["text"], hint["generated_text"]) == ("resp_1", "Start with the pilot", WHOLE)
    assert (hint["interrupted"], hint["played_ms"], hint["trim"]) == (True, 1612, "proportional")
    shown = cmd_sessions_show(store, "last")
    assert "Coach (full guidance): Start with the pilot [interrupted]" in shown
    assert WHOLE not in shown
    assert "2 items" in shown
    exported = json.loads(store.export("last", "json"))
    assert [i["text"] for i in exported["items"]] == ["Walk me through the rollout.", "Start with the pilot"]
    assert exported["items"][1]["generated_text"] == WHOLE
    assert "Start with the pilot _(interrupted)_" in store.export("last", "md")
    assert store.list()[0].items == 2


async def test_a_hint_cut_before_its_transcript_finished_is_one_record(store: SessionStore) -> None:
    journal = Journal(store, META)
    assert journal.hint_cut("resp_1", "quick", "Say", generated_text="Say the", played_ms=300, trim="timing")
    assert not journal.hint("resp_1", "quick", "Say the", interrupted=True)  # already kept
    # Cut before a word was heard: kept all the same, for what it generated (and cost).
    assert journal.hint_cut("resp_2", "quick", "", generated_text="Never heard.", played_ms=0, trim="proportional")
    assert not journal.hint_cut("resp_3", "quick", "", generated_text="  ", played_ms=0, trim="proportional")
    await journal.aclose({})
    assert journal.path is not None
    hints = [r for r in items_of(store.load(journal.path.stem)) if r["kind"] == "hint"]
    assert [(h["key"], h["text"], h["generated_text"]) for h in hints] == [
        ("resp_1", "Say", "Say the"),
        ("resp_2", "", "Never heard."),
    ]
    shown = cmd_sessions_show(store, "last")
    assert "Coach (quick hint): Say [interrupted]" in shown
    assert "Coach (quick hint): [interrupted]" in shown


def test_old_files_and_a_lost_first_record_still_read(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    root.mkdir()
    old = [
        {"kind": "session", "id": "20261124-063730-abcd", "started_at": "2026-11-24T06:37:30.000Z"},
        {"kind": "hint", "key": "resp_1", "tier": "quick", "text": "Old hint.", "interrupted": True,
         "t": "2026-11-24T06:37:31.000Z"},
        # An amendment whose first record was torn away stands in for it.
        {"kind": "hint", "key": "resp_2#cut", "amends": "resp_2", "tier": "quick", "text": "Cut", "interrupted": True,
         "generated_text": "Cut short.", "t": "2026-11-24T06:37:32.000Z"},
    ]  # fmt: skip
    (root / "20261124-063730-abcd.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    store = SessionStore(root)
    items = items_of(store.load("last"))
    assert [(i["text"], "generated_text" in i) for i in items] == [("Old hint.", False), ("Cut", True)]
    assert "Coach (quick hint): Old hint. [interrupted]" in cmd_sessions_show(store, "last")
