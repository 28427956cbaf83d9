"""Helpers for the hotkey tests: a private X server (Xvfb) to press keys on with xdotool, a private D-Bus
session bus, and a fake desktop portal with GlobalShortcuts on it.

- :func:`xvfb` starts ``Xvfb -displayfd`` (the server picks a free display number and writes it once it
  listens), checks its socket in ``/tmp/.X11-unix``, and stops it by its pid.
- :func:`press` runs ``xdotool key ctrl+alt+h`` on that display (XTEST: the events reach every X client, as a
  real keyboard's would).
- :func:`session_bus` starts ``dbus-daemon`` with a minimal session config (no service directories, so nothing
  is D-Bus-activated: a bus with no portal on it unless a test puts one there).
- :class:`FakePortal` owns ``org.freedesktop.portal.Desktop`` on such a bus and answers the GlobalShortcuts
  calls as xdg-desktop-portal does (Request objects and their ``Response`` signals), and emits ``Activated``
  on demand. It is written from the portal's documentation, with jeepney, like the client under test.

Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from jeepney import DBusAddress, HeaderFields, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.asyncio import DBusConnection, DBusRouter, Proxy, open_dbus_connection

from voicecoach.hotkeys.portal import BUS_NAME, INTERFACE, OBJECT_PATH, REQUEST_INTERFACE, request_path

# The subprocess tests reuse the fault tests' process driver, which imports the e2e helpers by their bare name.
sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))
from tests.e2e.e2e_harness import meeting
from tests.faults.faults_harness import Cli, until, write_wav

__all__ = ["Cli", "FakePortal", "meeting", "press", "runtime_dir", "session_bus", "until", "write_wav", "xvfb"]

START_S = 10.0
STOP_S = 5.0

# The tools these tests need; CI installs them (.ci/run), and a machine without them fails the tests loudly.
TOOLS = ("Xvfb", "xdotool", "dbus-daemon")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            async with asyncio.timeout(STOP_S):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _first_line(fd: int, what: str) -> str:
    """The first line written to pipe ``fd`` (which this closes), within ``START_S``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        async with asyncio.timeout(START_S):
            line = await reader.readline()
    except TimeoutError:
        raise AssertionError(f"{what} did not start within {START_S:g} s") from None
    finally:
        transport.close()
    if not line:
        raise AssertionError(f"{what} exited before it was ready")
    return line.decode().strip()


@contextlib.asynccontextmanager
async def xvfb() -> AsyncIterator[str]:
    """A private X server; yields its DISPLAY (``:N``)."""
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        "Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp", "-noreset",
        pass_fds=(write_end,), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_end)
    try:
        number = await _first_line(read_end, "Xvfb")
        socket = Path(f"/tmp/.X11-unix/X{number}")
        async with asyncio.timeout(START_S):  # written after it listens; checked, not assumed
            while not socket.exists():
                await asyncio.sleep(0.01)
        yield f":{number}"
    finally:
        await _stop(proc)


async def press(display: str, keys: str = "ctrl+alt+h") -> float:
    """``xdotool key KEYS`` on ``display``; returns ``time.monotonic()`` just before xdotool was started."""
    env = {**os.environ, "DISPLAY": display}
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "xdotool", "key", keys, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(START_S):
        _, err = await proc.communicate()
    assert proc.returncode == 0, f"xdotool key {keys} failed: {err.decode()}"
    return started


SESSION_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@contextlib.asynccontextmanager
async def session_bus(directory: Path) -> AsyncIterator[str]:
    """A private session bus with nothing on it; yields its address (for DBUS_SESSION_BUS_ADDRESS)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "session.conf"
    config.write_text(SESSION_CONFIG.format(socket=directory / "bus"))
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        "dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile", f"--print-address={write_end}",
        pass_fds=(write_end,), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_end)
    try:
        yield await _first_line(read_end, "dbus-daemon")
    finally:
        await _stop(proc)


class FakePortal:
    """``org.freedesktop.portal.Desktop`` with (or, ``global_shortcuts=False``, without) GlobalShortcuts.

    ``refuse``: BindShortcuts' Response says the user cancelled the dialog. After the client's calls:
    ``sessions`` (created), ``bound`` (the shortcuts as asked: id → its options), ``closed`` (sessions closed).
    """

    def __init__(self, address: str, *, global_shortcuts: bool = True, refuse: bool = False) -> None:
        self.address = address
        self.global_shortcuts = global_shortcuts
        self.refuse = refuse
        self.sessions: list[str] = []
        self.bound: dict[str, dict[str, Any]] = {}
        self.closed: list[str] = []
        self.bind_calls = asyncio.Event()
        self._conn: DBusConnection | None = None
        self._serving: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FakePortal:
        self._conn = conn = await open_dbus_connection(self.address)
        async with DBusRouter(conn) as router:  # only for the name request; the server loop reads the rest
            [code] = await Proxy(message_bus, router).RequestName(BUS_NAME)
        assert code == 1, f"could not own {BUS_NAME} (RequestName answered {code})"
        self._serving = asyncio.create_task(self._serve(conn), name="fake-portal")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._serving is not None:
            self._serving.cancel()
            await asyncio.gather(self._serving, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()

    async def activate(self, shortcut: str) -> None:
        """Emit ``Activated`` for ``shortcut`` on the newest session, as the desktop does on a press."""
        assert self._conn is not None and self.sessions, "no session to activate"
        where = DBusAddress(OBJECT_PATH, interface=INTERFACE)
        body = (self.sessions[-1], shortcut, int(time.monotonic() * 1000), {})
        await self._conn.send(new_signal(where, "Activated", "osta{sv}", body))

    async def _serve(self, conn: DBusConnection) -> None:
        while True:
            message = await conn.receive()
            if message.header.message_type is MessageType.method_call:
                await self._answer(conn, message)

    async def _answer(self, conn: DBusConnection, call: Any) -> None:
        fields = call.header.fields
        member, interface = fields.get(HeaderFields.member), fields.get(HeaderFields.interface)
        sender = fields.get(HeaderFields.sender, "")
        if interface == "org.freedesktop.DBus.Properties" and member == "Get":
            if call.body[0] == INTERFACE and self.global_shortcuts:
                await conn.send(new_method_return(call, "v", (("u", 1),)))
            else:  # what xdg-desktop-portal answers for an interface it does not export
                await conn.send(new_error(call, "org.freedesktop.DBus.Error.InvalidArgs", "s", ("No such interface",)))
        elif interface == INTERFACE and self.global_shortcuts and member == "CreateSession":
            options = call.body[0]
            session = f"{OBJECT_PATH}/session/{sender[1:].replace('.', '_')}/{options['session_handle_token'][1]}"
            self.sessions.append(session)
            await self._respond(conn, call, sender, options["handle_token"][1], 0, {"session_handle": ("s", session)})
        elif interface == INTERFACE and self.global_shortcuts and member == "BindShortcuts":
            session, shortcuts, _parent, options = call.body
            assert session in self.sessions, f"BindShortcuts on an unknown session {session}"
            self.bound = {name: {k: v[1] for k, v in opts.items()} for name, opts in shortcuts}
            self.bind_calls.set()
            shown = [(name, {"trigger_description": ("s", opts["preferred_trigger"][1])}) for name, opts in shortcuts]
            results = {} if self.refuse else {"shortcuts": ("a(sa{sv})", shown)}
            await self._respond(conn, call, sender, options["handle_token"][1], 1 if self.refuse else 0, results)
        elif interface == "org.freedesktop.portal.Session" and member == "Close":
            self.closed.append(fields[HeaderFields.path])
            await conn.send(new_method_return(call))
        else:
            error = "org.freedesktop.DBus.Error.UnknownMethod"
            await conn.send(new_error(call, error, "s", (f"{interface}.{member} is not here",)))

    async def _respond(
        self, conn: DBusConnection, call: Any, sender: str, token: str, code: int, results: dict[str, Any]
    ) -> None:
        """Reply with the Request's path, then emit its Response (the portal's two-step answer)."""
        path = request_path(sender, token)
        await conn.send(new_method_return(call, "o", (path,)))
        await conn.send(
            new_signal(DBusAddress(path, interface=REQUEST_INTERFACE), "Response", "ua{sv}", (code, results))
        )


class RecordingControls:
    """A stand-in for :class:`voicecoach.control.Controls` that records each call and the thread it came on."""

    def __init__(self, muted: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.threads: list[int] = []
        self.muted = muted

    def run(self, command: str, source: str = "ctl") -> Any:
        import threading

        from voicecoach.control import Reply

        self.calls.append((command, source))
        self.threads.append(threading.get_ident())
        if command == "status":
            return Reply(True, "listening", {"muted": self.muted})
        if command in ("mute", "unmute"):
            self.muted = command == "mute"
        if command == "guide":
            return Reply(False, "not connected yet: nothing to ask")
        return Reply(True, f"{command} done")


@contextlib.contextmanager
def runtime_dir() -> Iterator[Path]:
    """A short private ``XDG_RUNTIME_DIR`` (mode 0700) under /tmp, so the run's control socket lands there and
    not in a shared place (and stays under the 108-byte limit of a socket path)."""
    with tempfile.TemporaryDirectory(prefix="vc-hk-", dir="/tmp") as path:
        os.chmod(path, 0o700)
        yield Path(path)
