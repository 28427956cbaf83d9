"""Global hotkeys in the real program: ``python -m voicecoach run --plain`` against the local server, with
DISPLAY on a private Xvfb and keys pressed by ``xdotool``; and the paths where no hotkeys can work (no display,
Wayland without the portal's GlobalShortcuts, the package missing), each of which says its one line while the
run goes on and ends with 0.

Each run gets a private ``XDG_RUNTIME_DIR`` (its control socket lands there) and a config file with the
``[hotkeys]`` table, as a user would write it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.hotkeys_harness import (
    Cli,
    FakePortal,
    meeting,
    press,
    runtime_dir,
    session_bus,
    until,
    write_wav,
    xvfb,
)

from voicecoach.server import RealtimeServer

LINES = ["Point one is the budget.", "Point two is the plan.", "Point three is the date."]
# Long enough to be still sounding when the stop key is pressed.
LONG_HINT = (
    "Start with the numbers from last quarter, then compare the two options side by side, say which one you "
    "would pick and why, and close with the single risk that worries you most about the other one."
)
HOTKEYS = '[hotkeys]\nhint = "<ctrl>+<alt>+h"\nstop = "<ctrl>+<alt>+s"\n'
ACTIVE = "hotkeys: X11 via pynput: hint <ctrl>+<alt>+h, stop <ctrl>+<alt>+s"
USE_CTL = "bind `voicecoach ctl hint` in your desktop's shortcut settings instead"
# Run the program with pynput and jeepney absent, the documented way (a None entry in sys.modules makes their
# import raise ModuleNotFoundError and importlib.util.find_spec answer None), exactly as `python -m voicecoach`.
WITHOUT_THE_EXTRA = (
    "import runpy, sys; sys.modules.update(pynput=None, jeepney=None); sys.argv[0] = 'voicecoach'; "
    "runpy.run_module('voicecoach', run_name='__main__', alter_sys=True)"
)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with runtime_dir() as path:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "DBUS_SESSION_BUS_ADDRESS"):
            monkeypatch.delenv(name, raising=False)  # each test says which desktop it runs in
        yield path


@pytest.fixture
async def display(runtime: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    async with xvfb() as name:
        monkeypatch.setenv("DISPLAY", name)
        monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
        yield name


def run_args(server: RealtimeServer, tmp_path: Path, *extra: str, hotkeys: str = HOTKEYS) -> list[str]:
    config = tmp_path / "config.toml"
    config.write_text(hotkeys, encoding="utf-8")
    audio = write_wav(tmp_path / "meeting.wav", meeting([(line, 0.8) for line in LINES]))
    return [
        "run",
        "--plain",
        "--config",
        str(config),
        "--base-url",
        server.base_url,
        "--ice-host",
        "127.0.0.1",
        "--input-file",
        str(audio),
        "--loop",
        "--output-file",
        str(tmp_path / "out.wav"),
        *extra,
    ]


def received(server: RealtimeServer, *types: str) -> list[dict[str, Any]]:
    return [e for call in server.calls for e in call.events_received if isinstance(e, dict) and e.get("type") in types]


async def test_hotkeys_ask_for_a_hint_and_stop_it_in_a_real_run(
    server_factory: Any, tmp_path: Path, display: str
) -> None:
    server: RealtimeServer = await server_factory(utterances=LINES, responses=[LONG_HINT], response_latency=0.05)
    cli = await Cli.start(*run_args(server, tmp_path, "--duration", "120"))
    try:
        assert await cli.line("hotkeys:", 30) == ACTIVE
        await cli.line("[listening]", 30)
        await until(lambda: bool(received(server, "session.update")), 10, "the session on the server")
        assert received(server, "response.create") == []

        await press(display, "ctrl+alt+h")
        await until(lambda: bool(received(server, "response.create")), 10, "response.create after the hint key")
        hint = await cli.line("Coach (quick): ", 30)
        assert LONG_HINT.split(",")[0] in hint, hint

        await press(display, "ctrl+alt+s")
        await until(
            lambda: bool(received(server, "response.cancel", "output_audio_buffer.clear")),
            10,
            "the interrupt on the server after the stop key",
        )
        await cli.line("[interrupted]", 20)
        assert len(received(server, "response.create")) == 1  # one press, one hint

        cli.proc.send_signal(signal.SIGINT)
        code = await cli.wait(30)
    finally:
        await cli.close()
    assert code == 130, cli.stdout + cli.stderr
    assert "Traceback" not in cli.stderr, cli.stderr
    assert cli.count("hotkeys:") == 1


async def run_until_done(cli: Cli) -> int:
    """The line-mode run must connect and then end by itself (--duration) with 0."""
    try:
        await cli.line("[listening]", 30)
        code = await cli.wait(30)
    finally:
        await cli.close()
    assert "Traceback" not in cli.stderr, cli.stderr
    return code


async def test_no_display_says_so_and_the_run_goes_on(server_factory: Any, tmp_path: Path, runtime: Path) -> None:
    server: RealtimeServer = await server_factory(utterances=LINES)
    cli = await Cli.start(*run_args(server, tmp_path, "--duration", "3"))
    code = await run_until_done(cli)
    assert code == 0, cli.stdout + cli.stderr
    [line] = [line for line in cli.out if line.startswith("hotkeys:")]
    assert line.startswith("hotkeys: off: no display (DISPLAY and WAYLAND_DISPLAY are unset, as over SSH)"), line
    assert "voicecoach ctl hint" in line
    assert "--duration 3 s reached" in cli.stdout


@pytest.mark.parametrize("portal", ["none", "without GlobalShortcuts"])
async def test_wayland_without_the_portal_says_so_and_the_run_goes_on(
    server_factory: Any, tmp_path: Path, runtime: Path, monkeypatch: pytest.MonkeyPatch, portal: str
) -> None:
    server: RealtimeServer = await server_factory(utterances=LINES)
    async with session_bus(tmp_path / "dbus") as address:
        monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-voicecoach-test")
        monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        if portal == "none":
            cli = await Cli.start(*run_args(server, tmp_path, "--duration", "3"))
            code = await run_until_done(cli)
            why = "there is no desktop portal (xdg-desktop-portal) on the session bus"
        else:
            async with FakePortal(address, global_shortcuts=False):
                cli = await Cli.start(*run_args(server, tmp_path, "--duration", "3"))
                code = await run_until_done(cli)
            why = "the desktop portal has no GlobalShortcuts"
    assert code == 0, cli.stdout + cli.stderr
    [line] = [line for line in cli.out if line.startswith("hotkeys:")]
    assert line.startswith(f"hotkeys: off: Wayland session and {why}"), line
    assert line.endswith(USE_CTL), line


async def test_without_the_extra_says_how_to_install_it_and_the_run_goes_on(
    server_factory: Any, tmp_path: Path, display: str
) -> None:
    server: RealtimeServer = await server_factory(utterances=LINES)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WITHOUT_THE_EXTRA, *run_args(server, tmp_path, "--duration", "3"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    cli = Cli(proc)
    code = await run_until_done(cli)
    assert code == 0, cli.stdout + cli.stderr
    [line] = [line for line in cli.out if line.startswith("hotkeys:")]
    assert line == "hotkeys: off: pynput is not installed: pip install 'voicecoach[hotkeys]'", line
