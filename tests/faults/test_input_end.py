"""An ``--input-file`` run ends by itself once the file's last words are transcribed and the hint they asked
for has been heard, and says so; with ``--loop`` it goes on. The real program, against the local server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from e2e_harness import meeting
from faults_harness import Cli, write_wav

from voicecoach.server import RealtimeServer

HINT = "Say the budget is on track."


async def test_the_run_ends_after_the_last_words_and_their_hint(server_factory: Any, tmp_path: Path) -> None:
    lines = ["Thanks for joining.", "What about the budget? Good question."]
    server: RealtimeServer = await server_factory(utterances=lines, responses=[HINT])
    # The trigger is in the very last words of the file: the run must wait for its hint to be heard.
    audio = write_wav(tmp_path / "meeting.wav", meeting([(lines[0], 0.6), (lines[1], 0.3)]))
    out = tmp_path / "hints.wav"
    cli = await Cli.start(
        "run", "--plain", "--base-url", server.base_url, "--ice-host", "127.0.0.1",
        "--input-file", str(audio), "--output-file", str(out), "--events-file", str(tmp_path / "e.jsonl"),
    )  # fmt: skip
    try:
        async with asyncio.timeout(40):
            code = await cli.proc.wait()
    finally:
        await cli.close()
    assert code == 0, cli.stdout + cli.stderr
    stdout = cli.stdout
    assert "the input file has ended" in stdout
    assert f"Coach (quick): {HINT}" in stdout, stdout
    assert "session ended: the input file ended and its last words were handled" in stdout
    assert stdout.index(f"You: {lines[0]}") < stdout.index("the input file has ended")
    assert stdout.index(f"You: {lines[1]}") < stdout.index("session ended")
    assert stdout.index(f"Coach (quick): {HINT}") < stdout.index("session ended")
    # The hint was heard (its first sample reached the output file) before the run ended.
    events = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert "hint.trigger_to_audible_ms" in [e["event"].get("name") for e in events if e["dir"] == "local"]


async def test_loop_plays_the_file_again_until_the_duration(server_factory: Any, tmp_path: Path) -> None:
    lines = ["Point one.", "Point two."]
    server: RealtimeServer = await server_factory(utterances=lines * 10)
    audio = write_wav(tmp_path / "short.wav", meeting([(line, 0.5) for line in lines]))
    cli = await Cli.start(
        "run", "--plain", "--base-url", server.base_url, "--ice-host", "127.0.0.1",
        "--input-file", str(audio), "--output-file", str(tmp_path / "o.wav"), "--loop", "--duration", "9",
    )  # fmt: skip
    try:
        async with asyncio.timeout(40):
            code = await cli.proc.wait()
    finally:
        await cli.close()
    assert code == 0, cli.stdout + cli.stderr
    assert "the input file has ended" not in cli.stdout
    assert "--duration 9 s reached" in cli.stdout
    assert cli.stdout.count("You: ") > len(lines), "the file was not played again"
