"""The command line as a user meets it: real subprocesses, one-line errors, exit codes, no tracebacks.

Servers these tests start bind 127.0.0.1; the client is pinned to loopback with --ice-host.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from voicecoach.server import RealtimeServer, Scenario, ServerConfig
from voicecoach.server.voice import synth_speech

SECRET = "sk-cli-test-secret-0123456789"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICECOACH_", "OPENAI_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), VOICECOACH_DATA_DIR=str(tmp_path / "data"))
    env.update(VOICECOACH_THEM_DEVICE="none")  # the call's audio only where a test asks for it (see conftest)
    env.update(extra)
    return env


async def voicecoach(
    tmp_path: Path, *args: str, stdin: bytes | None = None, timeout: float = 60, **env: str
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicecoach",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env_for(tmp_path, **env),
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(stdin)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def assert_one_line_error(code: int, err: str, expected_code: int, *words: str) -> None:
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("voicecoach: error: ")
    for word in words:
        assert word in lines[0], lines[0]
    assert SECRET not in err


def write_wav(path: Path, pcm: np.ndarray, rate: int = 48000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype(np.int16).tobytes())
    return path


@pytest.fixture
def silence_wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "silence.wav", np.zeros(48000, dtype=np.int16))


@pytest.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    lines = ["Let's review the plan.", "That's a good question."]
    async with RealtimeServer(
        ServerConfig(scenario=Scenario(utterances=lines, responses=["Say it is on track."]), voice="synth")
    ) as s:
        yield s


async def test_help_is_quick_and_lists_commands(tmp_path: Path) -> None:
    code, out, _ = await voicecoach(tmp_path, "--help")
    assert code == 0
    for command in ("run", "serve", "demo", "devices", "sessions", "token-server"):
        assert command in out


async def test_bad_config_value(tmp_path: Path, silence_wav: Path) -> None:
    code, _, err = await voicecoach(tmp_path, "run", "--input-file", str(silence_wav), VOICECOACH_VAD_THRESHOLD="2")
    assert_one_line_error(code, err, 2, "VOICECOACH_VAD_THRESHOLD", "vad_threshold")


async def test_missing_config_file(tmp_path: Path) -> None:
    code, _, err = await voicecoach(tmp_path, "run", "--config", str(tmp_path / "nope.toml"))
    assert_one_line_error(code, err, 2, "nope.toml", "does not exist")


async def test_missing_input_file(tmp_path: Path) -> None:
    code, _, err = await voicecoach(
        tmp_path,
        "run",
        "--plain",
        "--input-file",
        str(tmp_path / "absent.wav"),
        "--output-file",
        str(tmp_path / "o.wav"),
    )
    assert_one_line_error(code, err, 2, "absent.wav")


async def test_no_api_key_for_the_real_api(tmp_path: Path, silence_wav: Path) -> None:
    code, _, err = await voicecoach(
        tmp_path, "run", "--plain", "--input-file", str(silence_wav), "--output-file", str(tmp_path / "o.wav")
    )
    assert_one_line_error(code, err, 3, "no API key", "OPENAI_API_KEY")


async def test_unreachable_server(tmp_path: Path, silence_wav: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = await voicecoach(
        tmp_path,
        "run",
        "--plain",
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--input-file",
        str(silence_wav),
        "--output-file",
        str(tmp_path / "o.wav"),
        OPENAI_API_KEY=SECRET,
    )
    assert_one_line_error(code, err, 3, "cannot connect", f"127.0.0.1:{port}")


async def test_bad_key_is_refused_without_showing_it(tmp_path: Path, silence_wav: Path) -> None:
    async with RealtimeServer(ServerConfig(api_key="sk-the-right-key-000000")) as strict:
        code, out, err = await voicecoach(
            tmp_path,
            "run",
            "--plain",
            "--base-url",
            strict.base_url,
            "--ice-host",
            "127.0.0.1",
            "--input-file",
            str(silence_wav),
            "--output-file",
            str(tmp_path / "o.wav"),
            OPENAI_API_KEY=SECRET,
        )
    assert_one_line_error(code, err, 3, "HTTP 401")
    assert SECRET not in out


async def test_done_when_command_completes_a_session(tmp_path: Path, server: RealtimeServer) -> None:
    """The issue's acceptance command, against a running local server."""
    audio = np.concatenate(
        [
            np.zeros(20000, np.int16),
            synth_speech("Let's review the plan."),
            np.zeros(30000, np.int16),
            synth_speech("That's a good question."),
            np.zeros(48000 * 5, np.int16),
        ]
    )
    x, y, e = write_wav(tmp_path / "x.wav", audio), tmp_path / "y.wav", tmp_path / "e.jsonl"
    code, out, err = await voicecoach(
        tmp_path,
        "run",
        "--base-url",
        server.base_url,
        "--input-file",
        str(x),
        "--output-file",
        str(y),
        "--events-file",
        str(e),
        "--duration",
        "10",
        "--plain",
        "--ice-host",
        "127.0.0.1",
    )
    assert code == 0, err
    assert "You: Let's review the plan." in out
    assert "Coach (quick): Say it is on track." in out
    assert "session ended: --duration 10 s reached" in out
    records = [json.loads(line) for line in e.read_text().splitlines()]
    assert {r["dir"] for r in records} == {"sent", "received", "local"}
    assert all(set(r) == {"t", "dir", "event"} for r in records)
    with wave.open(str(y)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert np.abs(frames).max() > 1000  # the hint's audio is in the output file


async def test_keys_on_stdin_drive_the_session(tmp_path: Path, server: RealtimeServer, silence_wav: Path) -> None:
    """h, g, i and m as lines on a pipe (not a TTY) do what they say; q ends the session."""
    e = tmp_path / "e.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicecoach",
        "run",
        "--plain",
        "--base-url",
        server.base_url,
        "--ice-host",
        "127.0.0.1",
        "--input-file",
        str(silence_wav),
        "--output-file",
        str(tmp_path / "o.wav"),
        "--events-file",
        str(e),
        "--duration",
        "40",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env_for(tmp_path),
    )
    assert proc.stdin is not None and proc.stdout is not None
    seen: list[str] = []
    cursor = 0

    async def wait_for_line(fragment: str) -> None:
        """Wait for a line containing ``fragment`` printed after the previous match."""
        nonlocal cursor
        assert proc.stdout is not None
        async with asyncio.timeout(15):
            while True:
                for i in range(cursor, len(seen)):
                    if fragment in seen[i]:
                        cursor = i + 1
                        return
                raw = await proc.stdout.readline()
                assert raw, f"exited before {fragment!r}: {seen}"
                seen.append(raw.decode())

    def sent(type_: str) -> list[dict[str, object]]:
        rows = [json.loads(line) for line in e.read_text().splitlines()] if e.exists() else []
        return [r["event"] for r in rows if r["dir"] == "sent" and r["event"]["type"] == type_]

    async def send(key: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(f"{key}\n".encode())
        await proc.stdin.drain()

    try:
        await wait_for_line("[listening]")
        await send("h")
        await wait_for_line("[speaking]")
        assert sent("response.create")[0]["response"]["metadata"]["voicecoach_tier"] == "quick"  # type: ignore[index]
        await send("i")
        await wait_for_line("interrupted (key)")
        assert len(sent("output_audio_buffer.clear")) == 1
        await send("m")
        await wait_for_line("[muted]")
        await send("m")
        await wait_for_line("[listening]")
        await send("g")
        await wait_for_line("full guidance #2 requested")
        assert sent("response.create")[-1]["response"]["metadata"]["voicecoach_tier"] == "full"  # type: ignore[index]
        await send("q")
        async with asyncio.timeout(15):
            await proc.wait()
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_an_internal_error_is_one_line_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from voicecoach import cli, store

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("boom with sk-leaky-secret-123456 inside")

    monkeypatch.setattr(store, "cmd_sessions_list", broken)
    code = cli.main(["sessions", "list"])
    err = capsys.readouterr().err
    assert code == cli.INTERNAL_ERROR
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error (RuntimeError): boom" in err
    assert "sk-leaky" not in err


@pytest.fixture
def no_portaudio(tmp_path: Path) -> dict[str, str]:
    """An environment where ``import sounddevice`` fails as it does without libportaudio2 installed."""
    fake = tmp_path / "no-portaudio"
    fake.mkdir()
    (fake / "sounddevice.py").write_text('raise OSError("PortAudio library not found")\n')
    return {"PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}


async def test_without_portaudio_files_still_work(
    tmp_path: Path, server: RealtimeServer, no_portaudio: dict[str, str]
) -> None:
    audio = np.concatenate(
        [np.zeros(20000, np.int16), synth_speech("Let's review the plan."), np.zeros(40000, np.int16)]
    )
    x, y = write_wav(tmp_path / "x.wav", audio), tmp_path / "y.wav"
    code, out, err = await voicecoach(
        tmp_path, "run", "--plain", "--base-url", server.base_url, "--ice-host", "127.0.0.1",
        "--input-file", str(x), "--output-file", str(y), "--duration", "4", **no_portaudio,
    )  # fmt: skip
    assert code == 0, err
    assert "You: Let's review the plan." in out
    assert y.exists()


async def test_without_portaudio_devices_give_one_line(tmp_path: Path, no_portaudio: dict[str, str]) -> None:
    code, _, err = await voicecoach(tmp_path, "devices", **no_portaudio)
    assert_one_line_error(code, err, 2, "PortAudio", "libportaudio2", "--input-file")
