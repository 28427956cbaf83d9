"""``voicecoach ctl hint|guide|stop|mute|unmute|status [--json] [--pid PID]``: one command to the running voicecoach.

Finds the live control socket (:mod:`.paths`; on Windows the loopback port and token of ``ctl-<pid>.json``),
sends the command, prints the answer in one line and exits:

    0  the command was carried out (or there was nothing to do: "already muted")
    1  no voicecoach running; several running and no --pid; the run refused or could not do it
    2  a usage error (said by the full command-line parser, which :func:`parse_args` leaves every odd case to)

With ``--json`` the reply is printed as the JSON it came in (``status`` has the figures). Errors are one line
on stderr, ``voicecoach: error: ...``, as everywhere in voicecoach.

A desktop shortcut runs this, so it must act fast: stdlib only (json, os, socket), and :func:`voicecoach.cli.main`
calls it before importing argparse or anything else of voicecoach.
"""

from __future__ import annotations

import os
import socket
import sys

from . import paths
from .wire import COMMANDS, MAX_LINE_BYTES, Status, WireError, encode_reply, encode_request, parse_reply

CONNECT_TIMEOUT_S = 1.0
# The run answers within one turn of its event loop; a loop that is busy for seconds is worth an error line.
REPLY_TIMEOUT_S = 5.0
OK, FAILED = 0, 1
SIGNAL_EXIT = 130  # as voicecoach.cli (not imported: it would cost the imports this path avoids)
INTERNAL_ERROR = 70

# A run found: its pid, the connected socket, and the token to send (None over a Unix socket).
Live = tuple[int, socket.socket, str | None]


def parse_args(argv: list[str]) -> tuple[str, bool, int | None] | None:
    """(command, --json, --pid) of a plain ctl command line; None for anything else (--help, a typo, a bad
    pid), which :mod:`voicecoach.cli_parser` then answers with its help or its one-line usage error."""
    command: str | None = None
    as_json = False
    pid: int | None = None
    rest = iter(argv)
    for arg in rest:
        if arg == "--json":
            as_json = True
        elif arg == "--pid" or arg.startswith("--pid="):
            value = arg.partition("=")[2] if "=" in arg else next(rest, "")
            if not (value.isascii() and value.isdigit() and int(value) > 0):
                return None
            pid = int(value)
        elif command is None and arg in COMMANDS:
            command = arg
        else:
            return None
    return None if command is None else (command, as_json, pid)


def run(command: str, as_json: bool = False, pid: int | None = None) -> int:
    """Send ``command`` to the one running voicecoach (or the one with ``pid``); print its answer; exit status."""
    try:
        return _run(command, as_json, pid)
    except KeyboardInterrupt:
        return SIGNAL_EXIT
    except Exception as exc:  # a bug of ours: one line, as voicecoach.cli says it (this path skips its handler)
        detail = _printable(str(exc)) or type(exc).__name__
        print(f"voicecoach: internal error ({type(exc).__name__}): {detail}; please report it", file=sys.stderr)
        return INTERNAL_ERROR


def _run(command: str, as_json: bool, pid: int | None) -> int:
    channel, why_not = paths.channel()
    if why_not is not None:
        return _fail(why_not)
    directory = paths.control_dir()
    if not os.path.lexists(directory):
        return _fail(f"no voicecoach running ({directory} does not exist); start voicecoach run or voicecoach demo")
    problem = paths.unsafe(directory)
    if problem is not None:
        return _fail(f"will not use the control directory: {problem}")
    tcp = channel == paths.TCP
    found = paths.endpoints(directory) if tcp else paths.sockets(directory)
    wanted = [(p, path) for p, path in found if pid is None or p == pid]
    live = _connect_all(wanted, tcp)
    try:
        if not live:
            others = [p for p, _, _ in _connect_all(found, tcp, probe=True)] if pid is not None else []
            return _fail(_nobody(directory, pid, others, tcp))
        if len(live) > 1:
            return _fail(f"several running: pass --pid ({', '.join(str(p) for p, _, _ in live)})")
        [(target, sock, token)] = live
        try:
            ok, line, status = _ask(sock, command, token)
        except TimeoutError:
            return _fail(f"the voicecoach with pid {target} did not answer within {REPLY_TIMEOUT_S:g} s")
        except (OSError, WireError) as exc:
            return _fail(f"the voicecoach with pid {target} did not answer: {exc}")
    finally:
        for _, each, _ in live:
            each.close()
    return _answer(ok, line, status, as_json)


def _answer(ok: bool, line: str, status: Status | None, as_json: bool) -> int:
    try:
        if as_json:
            print(encode_reply(ok, line, status).decode().rstrip("\n"))
        elif ok:
            print(_printable(line))
    except BrokenPipeError:  # `voicecoach ctl status | head -c 10`: the reader had enough
        pass
    if ok:
        return OK
    if as_json:
        return FAILED  # the reply, its line included, is on stdout already
    return _fail(line)


def _nobody(directory: str, pid: int | None, others: list[int], tcp: bool) -> str:
    if pid is None:
        what = "no control port of a ctl-PID.json answers" if tcp else "no control socket answers"
        return f"no voicecoach running ({what} in {directory}); start voicecoach run or demo"
    running = f"running: {', '.join(map(str, others))}" if others else "none is running"
    return f"no voicecoach running with pid {pid} ({running})"


def _connect_all(found: list[tuple[int, str]], tcp: bool, *, probe: bool = False) -> list[Live]:
    """The sockets (``tcp``: the endpoint files' ports) a live run listens on, connected (closed at once with
    ``probe``). One whose pid is gone, that nothing listens on (a pid reused by another program), or, over TCP,
    whose file is unreadable, is stale: the next run removes it."""
    live: list[Live] = []
    for pid, path in found:
        if not paths.pid_alive(pid):
            continue
        token: str | None = None
        address: str | tuple[str, int] = path
        if tcp:
            endpoint = paths.read_endpoint(path, pid)
            if endpoint is None:
                continue
            port, token = endpoint
            sock, address = socket.socket(socket.AF_INET, socket.SOCK_STREAM), (paths.LOOPBACK, port)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(address)
        except OSError:  # refused (no listener), gone since listed, or its backlog full: not one to talk to
            sock.close()
            continue
        if probe:
            sock.close()
        live.append((pid, sock, token))
    return live


def _ask(sock: socket.socket, command: str, token: str | None) -> tuple[bool, str, Status | None]:
    sock.settimeout(REPLY_TIMEOUT_S)
    sock.sendall(encode_request(command, token))
    received = b""
    while b"\n" not in received and len(received) <= MAX_LINE_BYTES:
        chunk = sock.recv(MAX_LINE_BYTES + 1)
        if not chunk:
            break
        received += chunk
    if not received:
        raise WireError("it closed the connection")
    return parse_reply(received.partition(b"\n")[0])


def _fail(line: str) -> int:
    print(f"voicecoach: error: {_printable(line)}", file=sys.stderr)
    return FAILED


def _printable(text: str) -> str:
    """One line a terminal cannot be driven by: a hint's text in a status line comes from the model."""
    return "".join(c if c.isprintable() else " " for c in " ".join(text.split()))
