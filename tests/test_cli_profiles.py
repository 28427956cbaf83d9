"""`voicecoach run --context/--profile` and `voicecoach profiles` as a user meets them: real subprocesses.

A context file that cannot be used must fail at start: exit 2, one line naming the file, before any audio is
opened (the --output-file WAV is never created) and before any connection is attempted (a listening socket on
127.0.0.1 that the run would call accepts nothing). A control run with a good context file does connect to it,
so the "nothing connected" check can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from test_cli import env_for, voicecoach
from test_config_property import assert_clean, config_bytes, run_main, sandbox
from voicecoach.context import load_context
from voicecoach.profiles import BUILTIN_PROFILES

KEY = "sk-cli-profiles-0123456789"


@contextlib.contextmanager
def listener() -> Iterator[socket.socket]:
    """A TCP socket listening on 127.0.0.1 that records whoever connects (accept() is non-blocking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def silent_wav(path: Path, seconds: float = 1.0) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(b"\x00\x00" * int(24000 * seconds))
    return path


def run_args(tmp_path: Path, port: int, *extra: str) -> list[str]:
    return [
        "run",
        "--plain",
        "--input-file",
        str(silent_wav(tmp_path / "in.wav")),
        "--output-file",
        str(tmp_path / "out.wav"),
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--ice-host",
        "127.0.0.1",
        *extra,
    ]


def context_case(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """(extra run arguments, the start of the one error line) for each way a context file can be unusable."""
    if case == "missing":
        path = tmp_path / "nope.md"
        return ["--context", str(path)], f"context file {path} does not exist"
    if case == "directory":
        (tmp_path / "notes").mkdir()
        return ["--context", str(tmp_path / "notes")], f"context file {tmp_path / 'notes'} is a directory"
    path = tmp_path / {"pdf": "cv.pdf"}.get(case, "cv.md")
    if case == "not-utf8":
        path.write_bytes(b"Jos\xe9 Garc\xeda, engineer\n")
        return ["--context", str(path)], f"context file {path} is not UTF-8 text (byte 0xe9 at offset 3)"
    if case == "empty":
        path.write_bytes(b"\n\n")
        return ["--context", str(path)], f"context file {path} is empty"
    if case == "pdf":
        path.write_bytes(b"%PDF-1.7\n")
        return ["--context", str(path)], f"context file {path}: PDF is not supported: save it as text (pdftotext"
    assert case == "too-large-from-config"
    # Given in a config file elsewhere than the current directory: the relative path is the file's.
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "cv.md").write_text("word " * 400)
    (conf / "config.toml").write_text('[coach]\ncontext_files = ["cv.md"]\ncontext_limit_tokens = 100\n')
    size = load_context([conf / "cv.md"], 24_000).tokens  # 500 tokens of text and the block's framing
    return ["--config", str(conf / "config.toml")], f"context is too large: {size} tokens ({conf / 'cv.md'} 500 tokens)"


CASES = ["missing", "directory", "not-utf8", "empty", "pdf", "too-large-from-config"]


@pytest.mark.parametrize("case", CASES)
async def test_an_unusable_context_file_fails_at_start_and_nothing_is_opened_or_sent(tmp_path: Path, case: str) -> None:
    extra, expected = context_case(tmp_path, case)
    with listener() as sock:
        code, out, err = await voicecoach(
            tmp_path, *run_args(tmp_path, sock.getsockname()[1], *extra), OPENAI_API_KEY=KEY, timeout=60
        )
        assert connections(sock) == 0, err
    assert code == 2, err
    assert err.splitlines() == [err.rstrip("\n")] and err.startswith(f"voicecoach: error: {expected}"), err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "out.wav").exists()  # the audio output was never opened
    assert not (tmp_path / "data" / "sessions").exists() or not any((tmp_path / "data" / "sessions").iterdir())


async def test_control_a_good_context_file_goes_on_to_connect(tmp_path: Path) -> None:
    """The same command with a usable file reaches the network: the check above is not vacuous."""
    cv = tmp_path / "cv.md"
    cv.write_text("# Jane Doe\nPayments lead, 2021-2024.\n")
    with listener() as sock:
        args = run_args(tmp_path, sock.getsockname()[1], "--context", str(cv), "--profile", "interview")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "voicecoach",
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env_for(tmp_path, OPENAI_API_KEY=KEY),
        )
        try:
            async with asyncio.timeout(60):
                while not connections(sock):
                    assert proc.returncode is None, await proc.stderr.read() if proc.stderr else b""
                    await asyncio.sleep(0.05)
        finally:
            proc.kill()
            await proc.wait()
    assert (tmp_path / "out.wav").exists()  # the audio was opened, after the context was read


async def test_an_unknown_profile_fails_at_start_listing_the_known_ones(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.sales]\ndescription = "sales calls"\n')
    with listener() as sock:
        args = run_args(tmp_path, sock.getsockname()[1], "--config", str(config), "--profile", "interveiw")
        code, _, err = await voicecoach(tmp_path, *args, OPENAI_API_KEY=KEY)
        assert connections(sock) == 0
    assert code == 2
    assert err == (
        "voicecoach: error: unknown profile 'interveiw' from --profile; did you mean 'interview'? known profiles: "
        "interview, meeting, study, sales (add one as a [profiles.NAME] table in the config file)\n"
    )


# --- voicecoach profiles ------------------------------------------------------------------------------------


async def test_profiles_lists_builtins_and_the_config_files_marking_the_active_one(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'profile = "sales"\n[profiles.sales]\ndescription = "sales calls: price, objections, next step"\n'
        'quick_window = 5\n[profiles.interview]\nthem_label = "Interviewer"\n'
    )
    code, out, err = await voicecoach(tmp_path, "profiles", "--config", str(config))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "DESCRIPTION"]
    rows = {line[2:].split()[0]: line for line in lines[1:5]}
    assert list(rows) == ["interview", "meeting", "study", "sales"]
    assert rows["sales"].split()[:4] == ["*", "sales", "config", "file"]
    assert rows["sales"].endswith("  sales calls: price, objections, next step")
    assert "  built-in, changed in config file  " in rows["interview"]
    assert rows["meeting"].startswith("  meeting") and rows["meeting"].endswith(BUILTIN_PROFILES["meeting"].description)
    assert lines[5:] == [f"config file: {config}", f"* active: sales (from config file {config})"]

    code, out, _ = await voicecoach(tmp_path, "profiles", "--config", str(config), VOICECOACH_PROFILE="study")
    assert code == 0 and "* study" in out and "* active: study (from environment variable VOICECOACH_PROFILE)" in out

    code, out, _ = await voicecoach(tmp_path, "profiles", "--config", str(config), "--json")
    listing = json.loads(out)
    assert listing["active"] == "sales" and listing["active_from"] == f"config file {config}"
    by_name = {p["name"]: p for p in listing["profiles"]}
    assert by_name["sales"]["settings"] == {"quick_window": 5} and by_name["sales"]["active"] is True
    assert by_name["interview"]["settings"]["them_label"] == "Interviewer"
    assert "STAR" in by_name["interview"]["settings"]["full_instructions"]  # the built-in's fields stay


async def test_profiles_without_a_config_file_and_with_a_broken_one(tmp_path: Path) -> None:
    code, out, err = await voicecoach(tmp_path, "profiles")
    assert code == 0, err
    assert "no profile is active" in out and "* " not in out and "built-in" in out
    config = tmp_path / "config.toml"
    config.write_text('profile = "sales"\n')
    code, out, err = await voicecoach(tmp_path, "profiles", "--config", str(config))
    assert code == 2 and out == ""
    assert err.startswith(f"voicecoach: error: unknown profile 'sales' from config file {config}; known profiles:")
    assert err.count("\n") == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=config_bytes())
def test_any_config_file_for_profiles_is_a_listing_or_one_line(data: bytes) -> None:
    with sandbox({}) as root:
        path = root / "config.toml"
        path.write_bytes(data)
        code, err = run_main(["profiles", "--config", str(path)])
        assert_clean(code, err, ["profiles", "--config", repr(data)])
