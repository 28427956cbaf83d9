"""`voicecoach sessions list|show|export|delete` through the real CLI: ids, prefixes and `last`, one-line errors
with exit 2, export to a file, help that shows every default, and a run that never connected leaving no file."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from voicecoach import cli
from voicecoach.journal import Journal
from voicecoach.store import SessionStore

SRC = Path(__file__).resolve().parents[1] / "src"


def kept_run(text: str, *, cost: float | None = 0.0125, model: str = "gpt-realtime-1.5") -> str:
    """A finished run in the default store (the hermetic $VOICECOACH_DATA_DIR); its id."""
    journal = Journal(SessionStore(), {"model": model})
    journal.utterance("item_1", text)
    journal.hint("resp_1", "quick", f"hint for {text}", interrupted=False)
    assert journal.close_sync({"cost_usd": cost, "reason": "quit"} if cost is not None else {}, timeout=30)
    assert journal.id is not None
    return journal.id


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def sessions_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sessions = sub.choices["sessions"]
    which = next(a for a in sessions._actions if isinstance(a, argparse._SubParsersAction))
    return dict(which.choices)


def test_every_sessions_option_has_help_that_shows_its_default() -> None:
    parsers = sessions_parsers()
    assert set(parsers) == {"list", "show", "export", "delete"}
    for name, parser in parsers.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"sessions {name} {action.dest} has no help"
            if action.option_strings:
                assert "default" in action.help, f"sessions {name} {action.option_strings[0]} hides its default"
            else:
                assert "last" in action.help and "prefix" in action.help  # every ID says what it accepts


def test_list_show_export_and_delete(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    first = kept_run("first meeting")
    second = kept_run("second meeting", cost=None)
    code, out, _ = run_cli(capsys, "sessions", "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "STARTED", "(UTC)", "DURATION", "COST", "ITEMS", "MODEL", "TITLE"]
    assert rows[0].startswith(second) and rows[1].startswith(first)
    assert "$0.0125" in rows[1] and "gpt-realtime-1.5" in rows[1] and rows[1].endswith("first meeting")

    code, out, _ = run_cli(capsys, "sessions", "show", "last")
    assert code == 0 and out.startswith(f"session {second}, started ")
    assert "You: second meeting" in out and "Coach (quick hint): hint for second meeting" in out

    target = tmp_path / "export.json"
    code, out, _ = run_cli(capsys, "sessions", "export", first, "--format", "json", "-o", str(target))
    assert (code, out) == (0, f"exported session {first} (json) to {target}\n")
    doc = json.loads(target.read_text())
    assert doc["id"] == first and doc["model"] == "gpt-realtime-1.5" and doc["cost_usd"] == 0.0125
    assert doc["started_at"] and doc["ended_at"] and doc["duration_s"] is not None and not doc["ended_abruptly"]

    code, out, err = run_cli(capsys, "sessions", "export", first, "-o", str(target))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "already exists" in err and "--force" in err
    code, _, _ = run_cli(capsys, "sessions", "export", first, "-o", str(target), "--force")
    assert code == 0 and target.read_text().startswith(f"# voicecoach session {first}")

    code, out, _ = run_cli(capsys, "sessions", "export", "last")
    assert code == 0 and "- Model: gpt-realtime-1.5" in out and "- Duration: " in out

    code, out, _ = run_cli(capsys, "sessions", "delete", "last")
    assert code == 0 and out.startswith(f"deleted {second} (")
    assert SessionStore().ids() == [first]


def test_delete_empty_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    spoken = kept_run("said something")
    quiet = Journal(SessionStore(), {"model": "m"})
    quiet.interrupt("key")
    assert quiet.close_sync({"cost_usd": 0.0}, timeout=30)
    code, out, _ = run_cli(capsys, "sessions", "delete", "--empty")
    assert code == 0 and out == f"deleted {quiet.id} ({quiet.path})\n"
    assert SessionStore().ids() == [spoken]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["sessions", "show", "2"], "ambiguous"),
        (["sessions", "delete", "2"], "ambiguous"),
        (["sessions", "export", "29991231"], "`voicecoach sessions list` shows the ids"),
        (["sessions", "show", "../../etc/passwd"], "`voicecoach sessions list` shows the ids"),
    ],
)
def test_bad_ids_are_one_line_with_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    made = [kept_run("one"), kept_run("two")]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("voicecoach: error: ") and needle in err
    if needle == "ambiguous":
        assert all(session_id in err for session_id in made)
    assert sorted(SessionStore().ids()) == sorted(made)  # nothing deleted


def test_last_with_no_sessions_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "sessions", "show", "last")
    assert code == 2 and err.count("\n") == 1 and "no sessions yet" in err


def test_a_run_that_never_connects_leaves_no_session_file(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port on loopback that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    audio = tmp_path / "in.wav"
    with wave.open(str(audio), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(24000)
        wav.writeframes(b"\0\0" * 2400)
    argv = ["run", "--plain", "--base-url", f"http://127.0.0.1:{port}/v1", "--input-file", str(audio)]
    argv += ["--output-file", str(tmp_path / "out.wav"), "--duration", "20"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "voicecoach", *argv], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 3, proc.stderr
    data = Path(os.environ["VOICECOACH_DATA_DIR"])
    assert not (data / "sessions").exists() or list((data / "sessions").iterdir()) == []
    assert "transcript:" not in proc.stdout + proc.stderr
