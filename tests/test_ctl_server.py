"""The control socket (:func:`voicecoach.ctl.server.serving`) in this process, spoken to over real Unix sockets:
where it is made and with which modes, what it refuses, what it cleans up, and the one line it says instead of
failing the run."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicecoach.control import Reply
from voicecoach.ctl import client, server
from voicecoach.ctl.paths import socket_path
from voicecoach.ctl.server import serving
from voicecoach.ctl.wire import encode_request, parse_reply

NOBODY = 65534


class FakeControls:
    """Answers every command with a fixed reply and keeps what it was asked (the real ones are tested apart)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def run(self, command: str, source: str = "ctl") -> Reply:
        self.asked.append((command, source))
        if command == "status":
            return Reply(True, "listening", {"state": "listening"})
        return Reply(True, f"did {command}")


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private XDG_RUNTIME_DIR short enough for socket paths (pytest's tmp_path can exceed 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vc-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def ask(path: str, payload: bytes) -> tuple[bool, str, dict[str, object] | None] | None:
    """Send ``payload`` on a fresh connection; the parsed reply, or None when the server closed without one."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(5):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return parse_reply(raw) if raw else None


async def test_a_command_is_answered_and_everything_is_removed_at_the_end(runtime: Path) -> None:
    controls, said = FakeControls(), list[str]()
    async with serving(controls, said.append) as path:
        assert path == socket_path(str(runtime / "voicecoach"), os.getpid())
        assert stat.S_IMODE(os.stat(runtime / "voicecoach").st_mode) == 0o700
        assert stat.S_ISSOCK(os.stat(path).st_mode) and stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert os.readlink(runtime / "voicecoach" / "ctl.sock") == os.path.basename(path)
        assert await ask(path, encode_request("hint")) == (True, "did hint", None)
        assert await ask(path, encode_request("status")) == (True, "listening", {"state": "listening"})
    assert controls.asked == [("hint", "ctl"), ("status", "ctl")]
    assert said == []  # the start-up line is remote_controls'; serving speaks only of trouble
    assert os.listdir(runtime / "voicecoach") == []


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"hint\n", "not JSON"),
        (b'{"v": 1, "command": "reboot"}\n', "unknown command 'reboot'"),
        (b'{"v": 9, "command": "hint"}\n', "unsupported ctl protocol version 9"),
        (b"x" * 10_000 + b"\n", "longer than 4096 bytes"),
    ],
)
async def test_a_bad_request_gets_a_refusal_and_the_socket_serves_on(runtime: Path, payload: bytes, words: str) -> None:
    controls = FakeControls()
    async with serving(controls, print) as path:
        assert path is not None
        reply = await ask(path, payload)
        assert reply is not None and reply[0] is False and words in reply[1], reply
        assert await ask(path, encode_request("stop")) == (True, "did stop", None)
    assert controls.asked == [("stop", "ctl")]


async def test_a_client_that_sends_nothing_is_dropped_after_a_while(
    runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "READ_TIMEOUT_S", 0.2)
    async with serving(FakeControls(), print) as path:
        assert path is not None
        reader, writer = await asyncio.open_unix_connection(path)
        async with asyncio.timeout(5):
            raw = await reader.read()
        writer.close()
        assert parse_reply(raw) == (False, "bad request: no line within 0.2 s", None)
        # A client that connects and leaves (voicecoach ctl looking for live sockets) gets nothing, and no harm.
        _, probe = await asyncio.open_unix_connection(path)
        probe.close()
        await probe.wait_closed()
        assert await ask(path, encode_request("hint")) == (True, "did hint", None)


async def test_a_connection_open_at_the_end_is_closed_and_its_task_awaited(runtime: Path) -> None:
    async with serving(FakeControls(), print) as path:
        assert path is not None
        reader, writer = await asyncio.open_unix_connection(path)
        await asyncio.sleep(0.05)  # accepted: its task waits for a line
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # closed by the server on the way out, before the timeout
    writer.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "ctl-connection"]


async def test_a_peer_of_another_uid_is_refused_and_the_run_is_told(runtime: Path) -> None:
    controls, said = FakeControls(), list[str]()
    async with serving(controls, said.append, peer=lambda sock: os.getuid() + 1000) as path:
        assert path is not None
        reply = await ask(path, encode_request("stop"))
    assert reply == (
        False,
        f"refused: this voicecoach belongs to uid {os.getuid()}, not to uid {os.getuid() + 1000}",
        None,
    )
    assert controls.asked == []
    assert said == [
        f"control: refused a command from uid {os.getuid() + 1000} (only uid {os.getuid()} may drive this run)"
    ]


def test_the_peer_is_known_on_linux() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert server.peer_uid(left) == (os.getuid() if sys.platform == "linux" else None)


# An interpreter another user may run (this venv's may sit under root's home, which nobody can enter).
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin:/usr/local/bin")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can start a process as another user")
@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system python3 for another user to run")
async def test_another_user_is_refused_by_the_peer_check_even_through_open_modes(runtime: Path) -> None:
    """The directory keeps other users out; here it is opened up on purpose, so the peer check must refuse."""
    assert SYSTEM_PYTHON is not None
    controls = FakeControls()
    async with serving(controls, print) as path:
        assert path is not None
        os.chmod(runtime, 0o711)
        os.chmod(runtime / "voicecoach", 0o711)
        os.chmod(path, 0o666)
        code = (
            "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            's.sendall(b\'{"v":1,"command":"stop"}\\n\'); print(s.recv(4096).decode())'
        )
        proc = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, "-I", "-c", code, path, user=NOBODY, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        async with asyncio.timeout(20):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert parse_reply(out.strip()) == (
        False,
        f"refused: this voicecoach belongs to uid {os.getuid()}, not to uid {NOBODY}",
        None,
    )
    assert controls.asked == []


async def test_stale_sockets_are_removed_at_start_and_live_ones_kept(runtime: Path) -> None:
    where = runtime / "voicecoach"
    where.mkdir(mode=0o700)
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    dead_pid = dead.pid  # a process that has ended: its pid is free
    leftovers = [bound_and_closed(socket_path(str(where), pid)) for pid in (dead_pid, os.getpid())]
    alive = bound_and_closed(socket_path(str(where), os.getppid()))  # a live process (not listening: not ours)
    (where / "ctl.sock").symlink_to(os.path.basename(leftovers[0]))  # the alias of the killed run
    (where / "notes.txt").write_text("not ours to remove")
    async with serving(FakeControls(), print) as path:
        assert path is not None
        assert not os.path.exists(leftovers[0])
        assert os.path.exists(path) and path == leftovers[1]  # our pid's leftover was replaced by our socket
        assert os.path.exists(alive)
        assert os.readlink(where / "ctl.sock") == os.path.basename(path)
    assert sorted(os.listdir(where)) == sorted(["notes.txt", os.path.basename(alive)])


def bound_and_closed(path: str) -> str:
    """A socket file nothing listens on: what a killed run leaves behind."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()
    return path


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("mode", "has mode 0755: other users could reach its sockets"),
        ("file", "is not a directory"),
        ("link", "is a symbolic link"),
        ("long", "bytes, over the 107 a Unix socket allows"),
    ],
)
async def test_an_unusable_directory_is_one_line_and_the_body_still_runs(
    runtime: Path, monkeypatch: pytest.MonkeyPatch, setup: str, words: str
) -> None:
    where = runtime / "voicecoach"
    if setup == "mode":
        where.mkdir(mode=0o700)
        where.chmod(0o755)
    elif setup == "file":
        where.write_text("")
    elif setup == "link":
        (runtime / "elsewhere").mkdir(mode=0o700)
        where.symlink_to(runtime / "elsewhere")
    else:
        deep = runtime / ("d" * 100)
        deep.mkdir(mode=0o700)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    said: list[str] = []
    ran = False
    async with serving(FakeControls(), said.append) as path:
        ran = True
    assert ran and path is None
    [line] = said
    assert line.startswith("control: no voicecoach ctl socket: ") and words in line, line


async def test_a_bug_in_a_command_is_a_line_to_the_client_not_the_end_of_the_socket(runtime: Path) -> None:
    class Broken(FakeControls):
        def run(self, command: str, source: str = "ctl") -> Reply:
            if command == "hint":
                raise RuntimeError("boom")
            return super().run(command, source)

    async with serving(Broken(), print) as path:
        assert path is not None
        reply = await ask(path, encode_request("hint"))
        assert reply is not None and reply[:2] == (
            False,
            "internal error (RuntimeError): boom; rerun with --debug and report it",
        )
        assert await ask(path, encode_request("stop")) == (True, "did stop", None)


# --- the client's side of the same socket (client.run blocks: it runs in a thread, the loop serves) ------------


class Refusing(FakeControls):
    def run(self, command: str, source: str = "ctl") -> Reply:
        super().run(command, source)
        return Reply(False, "not connected yet: nothing to mute")


async def test_the_client_prints_the_answer_and_exits_by_it(runtime: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(FakeControls(), print):
        assert await asyncio.to_thread(client.run, "hint") == 0
        assert capsys.readouterr() == ("did hint\n", "")
        assert await asyncio.to_thread(client.run, "status", True) == 0
        assert capsys.readouterr() == ('{"ok":true,"line":"listening","status":{"state":"listening"}}\n', "")
    async with serving(Refusing(), print):
        assert await asyncio.to_thread(client.run, "mute") == 1
        assert capsys.readouterr() == ("", "voicecoach: error: not connected yet: nothing to mute\n")
        assert await asyncio.to_thread(client.run, "mute", True) == 1  # the reply on stdout, as it came
        assert capsys.readouterr() == ('{"ok":false,"line":"not connected yet: nothing to mute"}\n', "")


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"", "did not answer: it closed the connection"),
        (b"<html>\n", "did not answer: bad reply: not JSON"),
        (b'{"ok": true, "line": "\\u001b[2Jcleared"}\n', None),
    ],
)
async def test_the_client_survives_a_strange_answer(
    runtime: Path, capsys: pytest.CaptureFixture[str], answer: bytes, words: str | None
) -> None:
    where = runtime / "voicecoach"
    where.mkdir(mode=0o700)

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(answer)
        await writer.drain()
        writer.close()

    listener = await asyncio.start_unix_server(respond, path=socket_path(str(where), os.getpid()))
    async with listener:
        code = await asyncio.to_thread(client.run, "hint")
    out, err = capsys.readouterr()
    if words is None:  # a line that would drive the terminal is printed harmless
        assert (code, out, err) == (0, " [2Jcleared\n", "")
    else:
        assert code == 1 and out == ""
        assert err.startswith(f"voicecoach: error: the voicecoach with pid {os.getpid()} {words}"), err
        assert err.count("\n") == 1


async def test_the_client_gives_up_on_a_run_that_does_not_answer(
    runtime: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "REPLY_TIMEOUT_S", 0.3)
    where = runtime / "voicecoach"
    where.mkdir(mode=0o700)
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # listens, never accepts: a frozen run
    stalled.bind(socket_path(str(where), os.getpid()))
    stalled.listen()
    with stalled:
        assert await asyncio.to_thread(client.run, "hint") == 1
    assert capsys.readouterr().err == (
        f"voicecoach: error: the voicecoach with pid {os.getpid()} did not answer within 0.3 s\n"
    )


def test_usage_errors_and_help_go_through_the_full_parser(capsys: pytest.CaptureFixture[str]) -> None:
    from voicecoach import cli

    assert cli.main(["ctl", "reboot"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("voicecoach: error: voicecoach ctl: argument COMMAND: invalid")
    assert cli.main(["ctl", "hint", "--pid", "0"]) == 2
    assert "--pid: must be a whole number >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["ctl", "--help"]) == 0
    assert "hint (a quick hint), guide (full guidance), stop" in capsys.readouterr().out
    assert cli.main(["--help"]) == 0
    assert "drive the running voicecoach from a desktop shortcut" in capsys.readouterr().out
