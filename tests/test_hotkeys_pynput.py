"""pynput's listener on a private X server (Xvfb), pressed with ``xdotool key``: each press calls the command on
the event loop's thread, the listener thread is gone after exit, and ``hotkeys_running`` says one line."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.hotkeys_harness import RecordingControls, missing_tools, press, session_bus, xvfb

from voicecoach.hotkeys.keys import parse_binding
from voicecoach.hotkeys.pynput_keys import PynputHotkeys
from voicecoach.hotkeys.run import hotkeys_running
from voicecoach.hotkeys.settings import HotkeySettings

BINDINGS = {"hint": parse_binding("<ctrl>+<alt>+h"), "stop": parse_binding("<ctrl>+<alt>+s")}


def test_the_tools_are_installed() -> None:
    assert missing_tools() == [], "apt-get install -y xvfb xdotool dbus (as .ci/run does)"


@pytest.fixture
async def display(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """An X11 session of its own: DISPLAY on a fresh Xvfb, no Wayland variables."""
    async with xvfb() as name:
        monkeypatch.setenv("DISPLAY", name)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
        yield name


async def until(condition: object, seconds: float, what: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not condition():  # type: ignore[operator]
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds:g} s waiting for {what}") from None


async def test_a_press_calls_back_on_the_loop_and_the_thread_ends(display: str) -> None:
    pressed: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    hotkeys = PynputHotkeys(BINDINGS, lambda name: pressed.put_nowait((name, threading.get_ident())))
    assert await hotkeys.start() is None
    try:
        thread = hotkeys.thread
        assert thread is not None and thread.is_alive()
        for keys, name in [("ctrl+alt+h", "hint"), ("ctrl+alt+s", "stop"), ("ctrl+alt+h", "hint")]:
            await press(display, keys)
            async with asyncio.timeout(5):
                assert await pressed.get() == (name, threading.get_ident())
        await press(display, "ctrl+alt+g")  # not bound
        await press(display, "h")
        await asyncio.sleep(0.3)  # (nothing to wait for: a wrong callback would arrive within this)
        assert pressed.empty()
    finally:
        await hotkeys.stop()
    assert not thread.is_alive(), "the listener thread is still running after stop"


async def test_every_normal_form_is_one_pynput_parses(display: str) -> None:
    from pynput import keyboard  # the display is up: importing connects to it

    for text in ("<ctrl>+<alt>+h", "Win+F9", "<ctrl>+<alt>+<page_up>", "<ctrl>++", "<ctrl>+<alt>+<media_next>"):
        keyboard.HotKey.parse(str(parse_binding(text)))


async def test_hotkeys_running_drives_the_controls_and_says_one_line(display: str) -> None:
    controls = RecordingControls()
    said: list[str] = []
    settings = HotkeySettings(hint="<ctrl>+<alt>+h", stop="<ctrl>+<alt>+s", mute="<ctrl>+<alt>+m")
    before = set(threading.enumerate())
    async with hotkeys_running(settings, controls, said.append):
        assert said == ["hotkeys: X11 via pynput: hint <ctrl>+<alt>+h, stop <ctrl>+<alt>+s, mute <ctrl>+<alt>+m"]
        await press(display, "ctrl+alt+h")
        await until(lambda: controls.calls == [("hint", "hotkey")], 5, "the hint command")
        await press(display, "ctrl+alt+s")
        await until(lambda: controls.calls[-1:] == [("stop", "hotkey")], 5, "the stop command")
        # The mute key toggles: mute, then unmute (the status says which).
        await press(display, "ctrl+alt+m")
        await until(lambda: controls.calls[-1:] == [("mute", "hotkey")], 5, "mute")
        await press(display, "ctrl+alt+m")
        await until(lambda: controls.calls[-1:] == [("unmute", "hotkey")], 5, "unmute")
        assert set(controls.threads) == {threading.get_ident()}
    assert said[1:] == []
    leftover = [t for t in threading.enumerate() if t not in before and t.name.startswith("hotkeys-pynput")]
    assert not [t for t in leftover if t.name == "hotkeys-pynput" and t.is_alive()]


async def test_a_refused_command_is_said(display: str) -> None:
    controls = RecordingControls()  # answers "guide" with ok=False
    said: list[str] = []
    async with hotkeys_running(HotkeySettings(guide="<ctrl>+<alt>+g"), controls, said.append):
        await press(display, "ctrl+alt+g")
        await until(lambda: len(said) == 2, 5, "the refusal")
    assert said[1] == "hotkey guide: not connected yet: nothing to ask"


async def test_no_bindings_says_nothing(display: str) -> None:
    said: list[str] = []
    async with hotkeys_running(HotkeySettings(), RecordingControls(), said.append):
        pass
    assert said == []


async def test_disabled_or_off_says_one_short_line(display: str) -> None:
    said: list[str] = []
    async with hotkeys_running(HotkeySettings(hint="<f9>", enabled=False), RecordingControls(), said.append):
        pass
    async with hotkeys_running(HotkeySettings(hint="<f9>", mechanism="off"), RecordingControls(), said.append):
        pass
    assert said == ["hotkeys: off (hotkeys.enabled is false)", 'hotkeys: off: hotkeys.mechanism is "off"']


# python-xlib leaves the sockets of a connection attempt that failed to the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_x_display_that_is_not_there(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A display number no server listens on (this test's own Xvfb, stopped): a reason, not a crash or a hang.

    Run after the tests above, pynput is already imported, so it is the listener's thread that fails to connect
    (before it is ready); run alone, the import fails. Both give the same line."""
    async with xvfb() as name:
        pass
    monkeypatch.setenv("DISPLAY", name)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    said: list[str] = []
    async with hotkeys_running(HotkeySettings(hint="<ctrl>+<alt>+h"), RecordingControls(), said.append):
        pass
    gc.collect()  # (the leaked sockets' warnings land here, inside the filter)
    assert said == [
        f"hotkeys: off: cannot connect to the X display '{name}' (is an X server running there?); "
        "bind `voicecoach ctl hint` in your desktop's shortcut settings instead"
    ]


async def test_wayland_without_a_portal_in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async with session_bus(tmp_path / "bus") as address:
        monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-test")
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        said: list[str] = []
        async with hotkeys_running(HotkeySettings(hint="<ctrl>+<alt>+h"), RecordingControls(), said.append):
            pass
    assert said == [
        "hotkeys: off: Wayland session and there is no desktop portal (xdg-desktop-portal) on the session bus; "
        "bind `voicecoach ctl hint` in your desktop's shortcut settings instead"
    ]
