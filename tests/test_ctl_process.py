"""``voicecoach ctl`` against real ``voicecoach run --plain`` processes and the local server, over real sockets.

Each test has its own XDG_RUNTIME_DIR, a short one under /tmp: the runs' sockets are made there (never in the
machine's /run/user or /tmp/voicecoach-UID), and a Unix socket's path must fit in 107 bytes, which pytest's
tmp_path may not.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from voicecoach.server import RealtimeServer

sys.path[:0] = [str(Path(__file__).parent / "faults"), str(Path(__file__).parent / "e2e")]

from e2e_harness import meeting  # noqa: E402  # the shared harnesses are not on the default path
from faults_harness import Cli, until, write_wav  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
LINE = "Shall we start with the budget?"
LONG_HINT = (
    "Lead with the numbers first, then name the single biggest risk, who owns it, and what you will do about it "
    "before the next review."
)  # about 9 s of speech: still playing when it is stopped
STARTED = "control: voicecoach ctl hint|guide|stop|mute|unmute|status (socket "
HEAVY = ("aiortc", "aioice", "av", "numpy", "pydantic", "pydantic_settings", "textual", "aiohttp", "sounddevice")
NOBODY = 65534
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin:/usr/local/bin")  # one another user may run


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vc-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))  # the runs and the clients started below inherit it
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def ctl(*args: str, user: int | None = None, python: str = sys.executable) -> tuple[int, str, str]:
    """``python -m voicecoach ctl ARGS``: exit status, stdout, stderr. Never blocks the loop, which serves the
    local server the run is talking to."""
    env = {**os.environ, "PYTHONPATH": str(SRC)} if user is not None else None
    proc = await asyncio.create_subprocess_exec(
        python, "-m", "voicecoach", "ctl", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, user=user, env=env,
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("voicecoach: error: "), err
    assert "Traceback" not in err
    return lines[0]


@asynccontextmanager
async def running(server: RealtimeServer, tmp_path: Path, name: str = "run") -> AsyncIterator[Cli]:
    """A ``voicecoach run --plain`` on a looped meeting, until the block ends (killed then if still running)."""
    audio = write_wav(tmp_path / f"{name}.wav", meeting([(LINE, 1.0)]))
    cli = await Cli.start(
        "run", "--plain", "--base-url", server.base_url, "--ice-host", "127.0.0.1", "--input-file", str(audio),
        "--loop", "--output-file", str(tmp_path / f"{name}-out.wav"),
    )  # fmt: skip
    try:
        yield cli
    finally:
        await cli.close()


async def socket_of(cli: Cli) -> Path:
    """The socket the run says it listens on (its start-up line), once it is connected."""
    line = await cli.line(STARTED, 30)
    await cli.line("[listening]", 30)
    return Path(line.removeprefix(STARTED).removesuffix(")"))


def received(server: RealtimeServer, type_: str) -> int:
    return sum(isinstance(e, dict) and e.get("type") == type_ for call in server.calls for e in call.events_received)


async def test_ctl_drives_a_real_run(server_factory: Any, tmp_path: Path, runtime: Path, over_transport: str) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=[LONG_HINT])
    label = {"webrtc": "WebRTC", "websocket": "WebSocket"}[over_transport]
    async with running(server, tmp_path) as cli:
        path = await socket_of(cli)
        assert path == runtime / "voicecoach" / f"ctl-{cli.proc.pid}.sock"
        assert os.readlink(runtime / "voicecoach" / "ctl.sock") == path.name
        assert (path.stat().st_mode & 0o777) == 0o600 and ((runtime / "voicecoach").stat().st_mode & 0o777) == 0o700

        assert await ctl("status") == (0, f"listening · {label} · no profile · no hint yet · $0.0000 estimated\n", "")
        code, out, err = await ctl("status", "--json")
        assert code == 0 and err == ""
        reply = json.loads(out)
        assert reply["ok"] is True and reply["line"].startswith("listening")
        assert reply["status"] == {
            "state": "listening", "transport": over_transport, "profile": None, "muted": False, "last_hint": None,
            "cost_usd": 0.0, "pid": cli.proc.pid,
        }  # fmt: skip

        assert await ctl("hint") == (0, "quick hint #1 requested\n", "")
        await cli.line("· quick hint #1 requested", 10)  # in the run's own transcript of events
        await until(lambda: received(server, "response.create") == 1, 10, "response.create at the server")
        await cli.line("[speaking]", 15)
        assert await ctl("stop") == (0, "interrupted (ctl)\n", "")
        await cli.line("[interrupted]", 10)  # the coach's line, cut where it was stopped
        await cli.line("· interrupted (ctl)", 10)

        assert await ctl("mute") == (0, "muted: the microphone sends silence\n", "")
        await cli.line("[muted]", 10)
        assert await ctl("mute") == (0, "already muted\n", "")
        code, out, _ = await ctl("status", "--json")
        assert json.loads(out)["status"]["state"] == "muted" and json.loads(out)["status"]["muted"] is True
        assert await ctl("unmute") == (0, "unmuted: the microphone is live\n", "")
        await cli.line("[listening]", 10)
        assert await ctl("unmute") == (0, "already unmuted\n", "")

        await cli.send("quit\n")
        assert await cli.wait(30) == 0, cli.stderr
    assert not path.exists() and os.listdir(runtime / "voicecoach") == []  # the socket and its alias are gone
    assert "Traceback" not in cli.stderr
    [session] = (tmp_path / "data" / "sessions").glob("*.jsonl")
    records = [json.loads(line) for line in session.read_text().splitlines()]
    assert [r["why"] for r in records if r.get("kind") == "interrupt"] == ["ctl"]


async def test_with_nothing_running_ctl_says_so_and_ignores_stale_sockets(
    server_factory: Any, tmp_path: Path, runtime: Path
) -> None:
    where = runtime / "voicecoach"
    code, out, err = await ctl("hint")
    assert (code, out) == (1, "")
    assert one_error(err) == (
        f"voicecoach: error: no voicecoach running ({where} does not exist); start voicecoach run or voicecoach demo"
    )

    # What a killed run leaves: its socket (nothing listens) and the alias to it; and a socket named by a live pid
    # that is not a voicecoach (a pid reused), which no one answers on either.
    where.mkdir(mode=0o700)
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    stale = bound_and_closed(where / f"ctl-{dead.pid}.sock")
    reused = bound_and_closed(where / f"ctl-{os.getpid()}.sock")
    (where / "ctl.sock").symlink_to(stale.name)
    code, out, err = await ctl("status")
    assert (code, out) == (1, "")
    assert one_error(err) == (
        f"voicecoach: error: no voicecoach running (no control socket answers in {where}); start voicecoach run or demo"
    )
    assert (await ctl("status", "--pid", "4194999"))[2] == (
        "voicecoach: error: no voicecoach running with pid 4194999 (none is running)\n"
    )

    server: RealtimeServer = await server_factory(utterances=[LINE])
    async with running(server, tmp_path) as cli:
        path = await socket_of(cli)
        assert not stale.exists() and reused.exists()  # the dead run's socket was removed at start, not the other
        assert os.readlink(where / "ctl.sock") == path.name
        code, out, err = await ctl("status")  # the one that answers, the unanswered one ignored
        assert code == 0 and out.startswith("listening · WebRTC"), err
        assert (await ctl("status", "--pid", "4194999"))[2] == (
            f"voicecoach: error: no voicecoach running with pid 4194999 (running: {cli.proc.pid})\n"
        )
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.wait(30) == 130, cli.stderr
    assert sorted(os.listdir(where)) == [reused.name]  # SIGTERM: the run's socket and alias are gone too


def bound_and_closed(path: Path) -> Path:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    return path


async def test_two_runs_need_a_pid_and_the_alias_follows_the_newest(
    server_factory: Any, tmp_path: Path, runtime: Path
) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=["Yes."])
    alias = runtime / "voicecoach" / "ctl.sock"
    async with running(server, tmp_path, "first") as first:
        first_socket = await socket_of(first)
        async with running(server, tmp_path, "second") as second:
            second_socket = await socket_of(second)
            assert os.readlink(alias) == second_socket.name
            pids = sorted([first.proc.pid, second.proc.pid])
            code, out, err = await ctl("hint")
            assert (code, out) == (1, "")
            assert one_error(err) == f"voicecoach: error: several running: pass --pid ({pids[0]}, {pids[1]})"
            assert received(server, "response.create") == 0

            code, out, _ = await ctl("status", "--json", "--pid", str(first.proc.pid))
            assert code == 0 and json.loads(out)["status"]["pid"] == first.proc.pid
            assert await ctl("hint", "--pid", str(second.proc.pid)) == (0, "quick hint #1 requested\n", "")
            await second.line("· quick hint #1 requested", 10)
            await until(lambda: received(server, "response.create") == 1, 10, "response.create at the server")
            assert first.count("requested") == 0

            await second.send("quit\n")
            assert await second.wait(30) == 0, second.stderr
        assert not second_socket.exists()
        assert os.readlink(alias) == first_socket.name  # the alias names the run still there
        code, out, _ = await ctl("status")
        assert code == 0 and out.startswith("listening")
        await first.send("quit\n")
        assert await first.wait(30) == 0, first.stderr
    assert os.listdir(runtime / "voicecoach") == []


async def test_a_directory_others_can_enter_is_refused_and_the_run_goes_on(
    server_factory: Any, tmp_path: Path, runtime: Path
) -> None:
    where = runtime / "voicecoach"
    where.mkdir(mode=0o755)
    where.chmod(0o755)
    server: RealtimeServer = await server_factory(utterances=[LINE])
    async with running(server, tmp_path) as cli:
        refused = await cli.line("control: ", 30)
        assert refused == (
            f"control: no voicecoach ctl socket: {where} has mode 0755: other users could reach its sockets "
            f"(chmod 700 {where})"
        )
        await cli.line("[listening]", 30)
        await cli.line(f"You: {LINE}", 30)  # the run goes on without its socket
        assert os.listdir(where) == []
        code, out, err = await ctl("status")
        assert (code, out) == (1, "")
        assert one_error(err).startswith(
            f"voicecoach: error: will not use the control directory: {where} has mode 0755"
        )
        await cli.send("quit\n")
        assert await cli.wait(30) == 0, cli.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can start a process as another user")
@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system python3 for another user to run")
async def test_another_user_cannot_drive_the_run(server_factory: Any, tmp_path: Path, runtime: Path) -> None:
    """The client run as nobody, with this machine's own python (the venv's may sit in root's home)."""
    assert SYSTEM_PYTHON is not None
    os.chmod(runtime, 0o755)  # nobody may look inside XDG_RUNTIME_DIR itself; voicecoach/ stays 0700
    server: RealtimeServer = await server_factory(utterances=[LINE])
    async with running(server, tmp_path) as cli:
        path = await socket_of(cli)
        code, out, err = await ctl("stop", user=NOBODY, python=SYSTEM_PYTHON)
        assert (code, out) == (1, "")
        assert one_error(err) == (
            f"voicecoach: error: will not use the control directory: {path.parent} belongs to uid {os.getuid()}, "
            f"not to you (uid {NOBODY}): remove it"
        )
        # Around the client: the socket itself, which the 0700 directory keeps nobody from reaching.
        probe = f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r})"
        proc = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, "-I", "-c", probe, user=NOBODY, stderr=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(20):
            _, probe_err = await proc.communicate()
        assert proc.returncode == 1 and b"PermissionError" in probe_err
        assert await ctl("status") == (0, "listening · WebRTC · no profile · no hint yet · $0.0000 estimated\n", "")
        await cli.send("quit\n")
        assert await cli.wait(30) == 0, cli.stderr


async def test_the_demo_has_the_socket_too(tmp_path: Path, runtime: Path) -> None:
    cli = await Cli.start("demo", "--plain", "--output-file", str(tmp_path / "demo.wav"))
    try:
        path = await socket_of(cli)
        code, out, err = await ctl("status")
        assert code == 0 and out.startswith("listening · WebRTC · no profile · "), err
        cli.proc.send_signal(signal.SIGINT)
        assert await cli.wait(30) == 130, cli.stderr
    finally:
        await cli.close()
    assert not path.exists()


async def test_ctl_imports_no_heavy_module(runtime: Path) -> None:
    """A shortcut's `voicecoach ctl` loads the ctl package only: no argparse, pydantic, numpy, aiortc, Textual."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-m", "voicecoach", "ctl", "status", stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 1  # nothing runs here: "no voicecoach running"
    loaded = {line.rsplit("|", 1)[1].strip() for line in err.decode().splitlines() if line.startswith("import time:")}
    assert "voicecoach.ctl.client" in loaded  # the parse is right: it sees what was imported
    heavy = sorted(name for name in loaded if name.split(".")[0] in (*HEAVY, "argparse"))
    assert heavy == []
    ours = sorted(name for name in loaded if name.startswith("voicecoach"))
    assert ours == ["voicecoach", "voicecoach.cli", "voicecoach.ctl", "voicecoach.ctl.client", "voicecoach.ctl.paths",
                    "voicecoach.ctl.wire"]  # fmt: skip
