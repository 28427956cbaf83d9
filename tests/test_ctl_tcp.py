"""The loopback TCP control channel (Windows' channel), run here on Linux with ``VOICECOACH_CTL_CHANNEL=tcp``.

Real ``voicecoach run --plain`` processes against the local server, driven by ``python -m voicecoach ctl``: the
port and token file, a wrong or missing token refused without acting, stale files, two runs, the file removed on
exit, the client's imports; and in this process the channel's choice and what ``serving`` refuses. Each test
has its own XDG_RUNTIME_DIR, so the runs' files are never in the machine's own directories.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.test_ctl_process import HEAVY, LINE, LONG_HINT, ctl, one_error, received, running

from voicecoach.control import Reply
from voicecoach.ctl import client, paths
from voicecoach.ctl.server import TOKEN_REFUSED, serving
from voicecoach.ctl.wire import WireError, encode_request, parse_reply, parse_request, parse_request_token
from voicecoach.server import RealtimeServer

sys.path[:0] = [str(Path(__file__).parent / "faults")]

from faults_harness import Cli, until  # noqa: E402  # the shared harness is not on the default path

STARTED = "control: voicecoach ctl hint|guide|stop|mute|unmute|status (socket 127.0.0.1:"
Reply3 = tuple[bool, str, dict[str, object] | None]


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private XDG_RUNTIME_DIR, and the TCP channel forced: the runs and the clients started below inherit both."""
    path = Path(tempfile.mkdtemp(prefix="vc-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    monkeypatch.setenv("VOICECOACH_CTL_CHANNEL", "tcp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def endpoint_of(cli: Cli) -> tuple[int, Path]:
    """(port, endpoint file) the run says it listens on (its start-up line), once it is connected."""
    line = await cli.line(STARTED, 30)
    await cli.line("[listening]", 30)
    port, _, rest = line.removeprefix(STARTED).partition(", token in ")
    return int(port), Path(rest.removesuffix(")"))


async def send_raw(port: int, payload: bytes) -> Reply3:
    reader, writer = await asyncio.open_connection(paths.LOOPBACK, port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(5):
            raw = await reader.read()
    finally:
        writer.close()
    return parse_reply(raw.strip())


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed): what a killed run's file names."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((paths.LOOPBACK, 0))
        return int(sock.getsockname()[1])


def write_endpoint(path: Path, pid: int, port: int) -> Path:
    path.write_text(json.dumps({"port": port, "token": "ab" * 32, "pid": pid}))
    path.chmod(0o600)
    return path


# --- real runs ------------------------------------------------------------------------------------------------


async def test_ctl_drives_a_real_run_over_the_loopback_port(server_factory: Any, tmp_path: Path, runtime: Path) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=[LONG_HINT])
    where = runtime / "voicecoach"
    async with running(server, tmp_path) as cli:
        port, path = await endpoint_of(cli)
        assert path == where / f"ctl-{cli.proc.pid}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(where.stat().st_mode) == 0o700
        data = json.loads(path.read_text())
        assert data["port"] == port and data["pid"] == cli.proc.pid
        assert len(data["token"]) == 64 and int(data["token"], 16) >= 0
        assert data["token"] not in cli.stdout + cli.stderr  # the secret is never printed
        assert os.listdir(where) == [path.name]  # no socket, no alias: the TCP channel only

        assert await ctl("status") == (0, "listening · WebRTC · no profile · no hint yet · $0.0000 estimated\n", "")
        code, out, _ = await ctl("status", "--json")
        assert code == 0 and json.loads(out)["status"]["pid"] == cli.proc.pid
        assert await ctl("hint") == (0, "quick hint #1 requested\n", "")
        await cli.line("· quick hint #1 requested", 10)  # in the run's own transcript
        await until(lambda: received(server, "response.create") == 1, 10, "response.create at the server")
        await cli.line("[speaking]", 15)
        assert await ctl("stop") == (0, "interrupted (ctl)\n", "")
        await cli.line("[interrupted]", 10)

        await cli.send("quit\n")
        assert await cli.wait(30) == 0, cli.stderr
    assert os.listdir(where) == []  # the file is removed on exit
    assert "Traceback" not in cli.stderr


async def test_a_wrong_or_missing_token_is_refused_and_nothing_is_done(
    server_factory: Any, tmp_path: Path, runtime: Path
) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=["Yes."])
    async with running(server, tmp_path) as cli:
        port, path = await endpoint_of(cli)
        token = json.loads(path.read_text())["token"]
        wrong = ("0" if token[0] != "0" else "1") + token[1:]
        for request in (encode_request("hint"), encode_request("hint", wrong), encode_request("mute", "é" * 64)):
            assert await send_raw(port, request) == (False, TOKEN_REFUSED, None)
            await cli.line("control: refused a command without this run's token", 10)
        assert await send_raw(port, encode_request("status", "x" * 500)) == (
            False,
            'bad request: "token" must be text of at most 128 characters',
            None,
        )
        assert received(server, "response.create") == 0 and cli.count("requested") == 0
        assert cli.count("[muted]") == 0
        # The right token, sent by hand: the refusals above were about the token alone.
        assert await send_raw(port, encode_request("hint", token)) == (True, "quick hint #1 requested", None)
        await until(lambda: received(server, "response.create") == 1, 10, "response.create at the server")
        await cli.send("quit\n")
        assert await cli.wait(30) == 0, cli.stderr


async def test_stale_files_are_ignored_by_ctl_and_removed_by_the_next_run(
    server_factory: Any, tmp_path: Path, runtime: Path
) -> None:
    where = runtime / "voicecoach"
    code, out, err = await ctl("hint")
    assert (code, out) == (1, "")
    assert one_error(err) == (
        f"voicecoach: error: no voicecoach running ({where} does not exist); start voicecoach run or voicecoach demo"
    )
    where.mkdir(mode=0o700)
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    stale = write_endpoint(where / f"ctl-{dead.pid}.json", dead.pid, free_port())  # a killed run's
    reused = write_endpoint(where / f"ctl-{os.getpid()}.json", os.getpid(), free_port())  # a live pid, no listener
    garbled = where / f"ctl-{os.getppid()}.json"
    garbled.write_text('{"port": 1')  # cut short
    code, out, err = await ctl("status")
    assert (code, out) == (1, "")
    assert one_error(err) == (
        "voicecoach: error: no voicecoach running (no control port of a ctl-PID.json answers in "
        f"{where}); start voicecoach run or demo"
    )

    server: RealtimeServer = await server_factory(utterances=[LINE])
    async with running(server, tmp_path) as cli:
        await endpoint_of(cli)
        assert not stale.exists() and reused.exists() and garbled.exists()  # only the dead pid's is removed
        code, out, err = await ctl("status")  # the one that answers; the others passed over
        assert code == 0 and out.startswith("listening · WebRTC"), err
        assert (await ctl("status", "--pid", "4194999"))[2] == (
            f"voicecoach: error: no voicecoach running with pid 4194999 (running: {cli.proc.pid})\n"
        )
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.wait(30) == 130, cli.stderr
    assert sorted(os.listdir(where)) == sorted([reused.name, garbled.name])  # SIGTERM: its file is gone too


async def test_two_runs_need_a_pid(server_factory: Any, tmp_path: Path, runtime: Path) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=["Yes."])
    async with running(server, tmp_path, "first") as first:
        await endpoint_of(first)
        async with running(server, tmp_path, "second") as second:
            _, second_path = await endpoint_of(second)
            pids = sorted([first.proc.pid, second.proc.pid])
            code, out, err = await ctl("hint")
            assert (code, out) == (1, "")
            assert one_error(err) == f"voicecoach: error: several running: pass --pid ({pids[0]}, {pids[1]})"
            assert received(server, "response.create") == 0
            assert await ctl("hint", "--pid", str(second.proc.pid)) == (0, "quick hint #1 requested\n", "")
            await second.line("· quick hint #1 requested", 10)
            assert first.count("requested") == 0
            await second.send("quit\n")
            assert await second.wait(30) == 0, second.stderr
        assert not second_path.exists()
        code, out, _ = await ctl("status")
        assert code == 0 and out.startswith("listening")
        await first.send("quit\n")
        assert await first.wait(30) == 0, first.stderr
    assert os.listdir(runtime / "voicecoach") == []


async def test_ctl_over_tcp_imports_no_heavy_module(runtime: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", "-m", "voicecoach", "ctl", "status", stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    text = err.decode()
    assert proc.returncode == 1 and "no voicecoach running" in text  # the tcp path ran, to its end
    loaded = {line.rsplit("|", 1)[1].strip() for line in text.splitlines() if line.startswith("import time:")}
    assert "voicecoach.ctl.client" in loaded
    heavy = sorted(n for n in loaded if n.split(".")[0] in (*HEAVY, "argparse", "asyncio", "platformdirs"))
    assert heavy == []
    assert sorted(n for n in loaded if n.startswith("voicecoach")) == [
        "voicecoach", "voicecoach.cli", "voicecoach.ctl", "voicecoach.ctl.client", "voicecoach.ctl.paths",
        "voicecoach.ctl.wire",
    ]  # fmt: skip


# --- in this process ------------------------------------------------------------------------------------------


class FakeControls:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def run(self, command: str, source: str = "ctl") -> Reply:
        self.asked.append(command)
        return Reply(True, f"did {command}")


def test_the_channel_is_chosen_by_the_system_and_forced_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICECOACH_CTL_CHANNEL", raising=False)
    assert paths.channel() == ("unix", None)
    monkeypatch.setattr(sys, "platform", "win32")
    assert paths.channel() == ("tcp", None)
    monkeypatch.setenv("VOICECOACH_CTL_CHANNEL", "unix")
    assert paths.channel() == ("", "VOICECOACH_CTL_CHANNEL=unix: Python has no Unix sockets on Windows (unset it)")
    monkeypatch.setattr(sys, "platform", "linux")
    assert paths.channel() == ("unix", None)
    monkeypatch.setenv("VOICECOACH_CTL_CHANNEL", "tcp")
    assert paths.channel() == ("tcp", None)
    monkeypatch.setenv("VOICECOACH_CTL_CHANNEL", "pipe")
    assert paths.channel() == (
        "",
        "VOICECOACH_CTL_CHANNEL must be tcp or unix, got 'pipe' (unset it to choose by the system)",
    )


async def test_a_bad_channel_setting_is_one_line_on_both_sides(
    runtime: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOICECOACH_CTL_CHANNEL", "pipe")
    said: list[str] = []
    async with serving(FakeControls(), said.append) as where:
        assert where is None
    why = "VOICECOACH_CTL_CHANNEL must be tcp or unix, got 'pipe' (unset it to choose by the system)"
    assert said == [f"control: no voicecoach ctl channel: {why}"]
    assert client.run("hint") == 1
    assert capsys.readouterr() == ("", f"voicecoach: error: {why}\n")


async def test_on_windows_the_file_is_in_localappdata_and_the_client_finds_it(
    runtime: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As far as Linux can pretend: sys.platform says win32, so the directory and its checks are Windows'."""
    local = runtime / "AppData" / "Local"
    local.mkdir(parents=True)
    monkeypatch.setenv("LOCALAPPDATA", str(local))
    monkeypatch.delenv("VOICECOACH_CTL_CHANNEL")
    monkeypatch.setattr(sys, "platform", "win32")
    controls = FakeControls()
    async with serving(controls, print) as where:
        assert where is not None and where.endswith(f", token in {local / 'voicecoach' / f'ctl-{os.getpid()}.json'}")
        assert await asyncio.to_thread(client.run, "hint") == 0
        assert capsys.readouterr().out == "did hint\n"
    assert controls.asked == ["hint"]
    assert os.listdir(local / "voicecoach") == []


async def test_the_file_is_replaced_atomically_and_only_our_own_is_removed(runtime: Path) -> None:
    where = runtime / "voicecoach"
    where.mkdir(mode=0o700)
    ours = where / f"ctl-{os.getpid()}.json"
    write_endpoint(ours, os.getpid(), free_port())  # an earlier process with our pid
    (where / f"ctl-{os.getpid()}.json.tmp").write_text("half")  # one killed while writing
    async with serving(FakeControls(), print) as first:
        assert first is not None and json.loads(ours.read_text())["token"] != "ab" * 32
        assert os.listdir(where) == [ours.name]
        # Another run took the name meanwhile (it cannot, its pid differs; a hand edit can): it is left alone.
        write_endpoint(ours, os.getpid(), 1)
    assert ours.exists()


def test_the_request_carries_an_optional_token() -> None:
    assert encode_request("hint") == b'{"v":1,"command":"hint"}\n'
    assert encode_request("hint", "ab") == b'{"v":1,"command":"hint","token":"ab"}\n'
    assert parse_request_token(b'{"v":1,"command":"hint","token":"ab"}') == ("hint", "ab")
    assert parse_request_token(b'{"v":1,"command":"stop"}') == ("stop", None)
    assert parse_request(b'{"v":1,"command":"stop","token":"ab"}') == "stop"
    for bad in (b'{"v":1,"command":"stop","token":5}', b'{"v":1,"command":"stop","token":"' + b"a" * 129 + b'"}'):
        with pytest.raises(WireError, match='"token" must be text'):
            parse_request_token(bad)
    with pytest.raises(WireError, match='expected the keys "v" and "command"'):
        parse_request_token(b'{"v":1,"command":"stop","secret":"ab"}')


@pytest.mark.parametrize(
    "content",
    [
        '{"port": 1, "token": "' + "ab" * 32 + '", "pid": 7}',  # another pid than its name's
        '{"port": 0, "token": "' + "ab" * 32 + '", "pid": 12}',
        '{"port": true, "token": "' + "ab" * 32 + '", "pid": 12}',
        '{"port": 1, "token": "short", "pid": 12}',
        '{"port": 1, "token": "' + "AB" * 32 + '", "pid": 12}',
        "[1, 2]",
        "x" * 600,
    ],
)
def test_an_odd_endpoint_file_is_passed_over(tmp_path: Path, content: str) -> None:
    path = tmp_path / "ctl-12.json"
    path.write_text(content)
    assert paths.read_endpoint(str(path), 12) is None
    path.write_text('{"port": 1, "token": "' + "ab" * 32 + '", "pid": 12}')
    assert paths.read_endpoint(str(path), 12) == (1, "ab" * 32)
