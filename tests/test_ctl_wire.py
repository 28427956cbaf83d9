"""The control protocol's parsing, the socket directory's checks and ``voicecoach ctl``'s own argument reading:
pure functions and the file system, no process."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicecoach.ctl import client, paths, wire
from voicecoach.ctl.wire import MAX_LINE_BYTES, WireError, encode_reply, encode_request, parse_reply, parse_request


def test_every_command_goes_over_the_wire_and_back() -> None:
    for command in wire.COMMANDS:
        line = encode_request(command)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line) == {"v": 1, "command": command}
        assert parse_request(line) == command
        assert parse_request(line.rstrip(b"\n")) == command  # the newline is optional


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"hint\n", "not JSON"),
        (b'{"v": 1, "command": "hint"\n', "not JSON"),
        (b'["hint"]\n', "expected a JSON object, got list"),
        (b'"hint"\n', "expected a JSON object, got str"),
        (b'{"command": "hint"}\n', 'expected the keys "v" and "command"'),
        (b'{"v": 1, "command": "hint", "as": "root"}\n', "'as'"),
        (b'{"v": "1", "command": "hint"}\n', "the version must be a number"),
        (b'{"v": true, "command": "hint"}\n', "the version must be a number"),
        (b'{"v": 2, "command": "hint"}\n', "unsupported ctl protocol version 2"),
        (b'{"v": 1, "command": "quit"}\n', "unknown command 'quit': choose one of hint, guide, stop"),
        (b'{"v": 1, "command": 7}\n', "unknown command 7"),
        (b'{"v": 1, "command": "hint"}\n{"v": 1, "command": "stop"}\n', "more than one line"),
        (b'{"v": 1, "command": "h\xffnt"}\n', "not UTF-8"),
        (b"[" * 3000 + b"\n", "nested too deeply"),
        (b'{"v": 1, "command": "' + b"x" * MAX_LINE_BYTES + b'"}\n', f"longer than {MAX_LINE_BYTES} bytes"),
    ],
)
def test_a_bad_request_is_refused_in_one_line_that_says_why(raw: bytes, words: str) -> None:
    with pytest.raises(WireError) as caught:
        parse_request(raw)
    message = str(caught.value)
    assert words in message, message
    assert "\n" not in message and message.startswith(("bad request", "unsupported", "unknown command"))


def test_an_unknown_command_names_it_shortened() -> None:
    with pytest.raises(WireError) as caught:
        parse_request(json.dumps({"v": 1, "command": "z" * 500}).encode())
    assert len(str(caught.value)) < 150


def test_a_reply_goes_over_the_wire_and_back() -> None:
    status: dict[str, object] = {"state": "listening", "last_hint": "Café — “quoted”\nnext", "cost_usd": 0.0123}
    line = encode_reply(True, "listening · WebRTC", status)
    assert line.count(b"\n") == 1 and line.isascii()  # 7-bit: a reader can never split a character
    assert parse_reply(line) == (True, "listening · WebRTC", status)
    assert parse_reply(encode_reply(False, "already muted")) == (False, "already muted", None)


def test_a_reply_too_big_for_the_wire_keeps_its_verdict_and_line() -> None:
    line = encode_reply(True, "ok", {"last_hint": "é" * MAX_LINE_BYTES})
    assert len(line) <= MAX_LINE_BYTES
    assert parse_reply(line) == (True, "ok", None)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"line": "x"}', '"ok"'),
        (b'{"ok": 1, "line": "x"}', '"ok"'),
        (b'{"ok": true}', '"line"'),
        (b'{"ok": true, "line": "x", "status": [1]}', '"status" must be an object'),
        (b"nonsense", "not JSON"),
    ],
)
def test_a_bad_reply_is_an_error_not_a_crash(raw: bytes, words: str) -> None:
    with pytest.raises(WireError, match="bad reply") as caught:
        parse_reply(raw)
    assert words in str(caught.value)


def test_a_reply_from_a_newer_run_with_more_keys_is_still_read() -> None:
    assert parse_reply(b'{"ok": true, "line": "x", "took_ms": 1}') == (True, "x", None)


# --- voicecoach ctl's own reading of its arguments -----------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        (["hint"], ("hint", False, None)),
        (["status", "--json"], ("status", True, None)),
        (["--json", "status"], ("status", True, None)),
        (["stop", "--pid", "42"], ("stop", False, 42)),
        (["mute", "--pid=7", "--json"], ("mute", True, 7)),
    ],
)
def test_a_plain_command_line_is_read_without_the_full_parser(
    argv: list[str], parsed: tuple[str, bool, int | None]
) -> None:
    assert client.parse_args(argv) == parsed


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["-h"],
        ["hint", "--help"],
        ["hnit"],
        ["hint", "stop"],
        ["hint", "--pid"],
        ["hint", "--pid", "0"],
        ["hint", "--pid", "-3"],
        ["hint", "--pid", "²"],
        ["hint", "--jsn"],
        ["hint", "--debug"],
    ],
)
def test_anything_else_is_left_to_the_full_parser(argv: list[str]) -> None:
    """--help and every mistake go to argparse, which prints the help or the one-line usage error."""
    assert client.parse_args(argv) is None


# --- the directory ----------------------------------------------------------------------------------------


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose socket paths fit a Unix socket's 107 bytes (pytest's tmp_path may not)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="vc-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_the_directory_is_made_private_and_then_accepted(short_dir: Path) -> None:
    where = short_dir / "voicecoach"
    assert paths.make_dir(str(where)) is None
    assert (where.stat().st_mode & 0o777) == 0o700
    assert paths.make_dir(str(where)) is None  # already there: still fine


def test_a_directory_others_can_enter_is_refused(short_dir: Path) -> None:
    where = short_dir / "voicecoach"
    where.mkdir(mode=0o700)
    where.chmod(0o755)
    problem = paths.make_dir(str(where))
    assert problem is not None and "mode 0755" in problem and f"chmod 700 {where}" in problem


def test_a_symbolic_link_or_a_file_is_refused(short_dir: Path) -> None:
    target = short_dir / "elsewhere"
    target.mkdir(mode=0o700)
    link = short_dir / "voicecoach"
    link.symlink_to(target)
    assert "symbolic link" in (paths.unsafe(str(link)) or "")
    plain = short_dir / "file"
    plain.write_text("")
    assert "not a directory" in (paths.unsafe(str(plain)) or "")


def test_a_directory_of_another_user_is_refused(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = short_dir / "voicecoach"
    where.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(where).st_uid + 1)  # as if we were someone else
    problem = paths.unsafe(str(where))
    assert problem is not None and f"belongs to uid {where.stat().st_uid}" in problem


def test_the_directory_comes_from_xdg_runtime_dir_else_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert paths.control_dir() == "/run/user/1000/voicecoach"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert paths.control_dir() == f"/tmp/voicecoach-{os.getuid()}"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")  # set but empty counts as unset, as the XDG spec says
    assert paths.control_dir() == f"/tmp/voicecoach-{os.getuid()}"


def test_only_sockets_named_by_pid_are_listed(short_dir: Path) -> None:
    sockets = []
    for name in ("ctl-12.sock", "ctl-7.sock", "ctl-x.sock", "ctl-012.sock"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(short_dir / name))
        sockets.append(sock)
    (short_dir / "ctl-99.sock").write_text("")  # a file with a socket's name is not a socket
    (short_dir / "ctl.sock").symlink_to("ctl-12.sock")
    try:
        assert paths.sockets(str(short_dir)) == [
            (7, str(short_dir / "ctl-7.sock")),
            (12, str(short_dir / "ctl-12.sock")),
        ]
    finally:
        for sock in sockets:
            sock.close()


def test_a_path_too_long_for_a_unix_socket_is_named() -> None:
    assert paths.too_long("/run/user/1000/voicecoach/ctl-12345.sock") is None
    long = "/tmp/" + "d" * 120 + "/ctl-1.sock"
    assert f"is {len(long)} bytes, over the 107" in (paths.too_long(long) or "")


def test_a_dead_pid_is_told_from_a_live_one() -> None:
    assert paths.pid_alive(os.getpid())
    assert not paths.pid_alive(2**22 + 12345)  # above Linux's pid_max (at most 2**22)


def test_a_bug_in_the_client_is_one_line_and_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(paths, "control_dir", broken)
    assert client.run("hint") == 70
    assert capsys.readouterr().err == "voicecoach: internal error (RuntimeError): boom; please report it\n"
