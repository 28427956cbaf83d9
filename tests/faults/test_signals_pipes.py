"""Signals and pipes on the real program: SIGINT and SIGTERM end a run with 130 after saving the transcript,
``--duration`` ends it with 0 even while reconnecting, and a closed stdout ends it cleanly with 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import meeting
from faults_harness import Cli, until, write_wav

from voicecoach.server import RealtimeServer

LINES = ["Point one.", "Good question.", "Point three.", "Point four."]


def run_args(server: RealtimeServer, tmp_path: Path, audio: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--plain",
        "--base-url",
        server.base_url,
        "--ice-host",
        "127.0.0.1",
        "--input-file",
        str(audio),
        "--output-file",
        str(tmp_path / "out.wav"),
        *extra,
    ]


def saved_records(tmp_path: Path) -> list[dict[str, Any]]:
    [path] = (tmp_path / "data" / "sessions").glob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_ends_the_run_with_130_after_saving(
    server_factory: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    server: RealtimeServer = await server_factory(utterances=LINES, responses=["It is on track."])
    audio = write_wav(tmp_path / "meeting.wav", meeting([(line, 0.6) for line in LINES]))
    cli = await Cli.start(*run_args(server, tmp_path, audio, "--duration", "60"))
    try:
        await until(lambda: cli.count("You: ") >= 2, 20, "two utterances printed")
        cli.proc.send_signal(sig)
        async with asyncio.timeout(15):
            code = await cli.proc.wait()
    finally:
        await cli.close()
    assert code == 130, cli.stderr
    assert "Traceback" not in cli.stderr and "internal error" not in cli.stderr
    assert f"{sig.name} received" in cli.stdout
    assert "estimated cost" in cli.stdout
    texts = [r.get("text") for r in saved_records(tmp_path) if r.get("kind") == "utterance"]
    assert "Point one." in texts and "Good question." in texts


async def test_duration_ends_with_0_even_while_reconnecting(server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(utterances=LINES)
    audio = write_wav(tmp_path / "meeting.wav", meeting([(line, 0.6) for line in LINES]))
    cli = await Cli.start(*run_args(server, tmp_path, audio, "--duration", "6", "--loop"))
    try:
        await until(lambda: cli.count("You: ") >= 1, 20, "an utterance printed")
        await server.stop()  # the link is lost and every reconnect fails from now on
        async with asyncio.timeout(20):
            code = await cli.proc.wait()
    finally:
        await cli.close()
    assert code == 0, cli.stdout + cli.stderr
    assert "--duration 6 s reached" in cli.stdout
    assert "reconnect" in cli.stdout


@pytest.mark.parametrize("command", ["run", "demo"])
async def test_a_closed_stdout_ends_the_run_cleanly(server_factory: Any, tmp_path: Path, command: str) -> None:
    """``voicecoach … --plain | head -N``: the pipe closes under the run; exit 0, session saved, no error."""
    if command == "run":
        server: RealtimeServer = await server_factory(utterances=LINES)
        audio = write_wav(tmp_path / "meeting.wav", meeting([(line, 0.6) for line in LINES]))
        args = run_args(server, tmp_path, audio, "--duration", "60")
    else:
        args = ["demo", "--plain", "--output-file", str(tmp_path / "demo.wav")]
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicecoach",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(write_end)
    try:
        read: list[bytes] = []
        with os.fdopen(read_end, "rb") as head:
            async with asyncio.timeout(30):
                # Like `head`: read up to the first transcript line (the run is connected by then), then close.
                while not read or not read[-1].startswith(b"You: "):
                    line = await asyncio.to_thread(head.readline)
                    assert line, f"the run ended before a transcript line: {read}"
                    read.append(line)
        async with asyncio.timeout(30):
            stderr = (await proc.communicate())[1].decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr
    assert stderr.strip() == "", stderr
    assert list((tmp_path / "data" / "sessions").glob("*.jsonl")), "the session was not saved"


@pytest.mark.transports("auto")  # nothing has connected yet
@pytest.mark.parametrize("after_s", [0.4, 1.0])  # past the interpreter's own start, inside our imports
async def test_sigterm_during_start_up_is_130_too(tmp_path: Path, after_s: float) -> None:
    """Before the run's own handler is in place (imports, opening devices), SIGTERM still means 130, one line
    at most and no traceback: not the default handler's 143."""
    cli = await Cli.start("demo", "--plain", "--output-file", str(tmp_path / "demo.wav"))
    try:
        await asyncio.sleep(after_s)
        cli.proc.send_signal(signal.SIGTERM)
        code = await cli.wait(15)
    finally:
        await cli.close()
    assert code == 130, (code, cli.stderr)
    assert "Traceback" not in cli.stderr and len(cli.stderr.strip().splitlines()) <= 1, cli.stderr
