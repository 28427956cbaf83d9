"""The desktop portal client: its D-Bus messages (no bus), then the real client on a private session bus
against a fake GlobalShortcuts portal (tests/hotkeys_harness.py): the probe's four answers, a session, a press,
a refusal, and the session closed at the end."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jeepney import HeaderFields, MessageType
from tests.hotkeys_harness import FakePortal, session_bus

from voicecoach.hotkeys.keys import parse_binding
from voicecoach.hotkeys.portal import (
    PortalHotkeys,
    activated_id,
    bind_shortcuts,
    close_session,
    create_session,
    probe_portal,
    request_path,
    session_bus_address,
    version_query,
)

BINDINGS = {"hint": parse_binding("<ctrl>+<alt>+h"), "stop": parse_binding("<ctrl>+<alt>+s")}
SESSION = "/org/freedesktop/portal/desktop/session/1_7/voicecoach_ab"


def fields(message: object) -> dict[str, object]:
    header = message.header  # type: ignore[attr-defined]
    return {
        "type": header.message_type,
        "destination": header.fields[HeaderFields.destination],
        "path": header.fields[HeaderFields.path],
        "interface": header.fields[HeaderFields.interface],
        "member": header.fields[HeaderFields.member],
        "signature": header.fields.get(HeaderFields.signature),
    }


# --- messages -------------------------------------------------------------------------------------------------


def test_create_session_message() -> None:
    message = create_session("voicecoach_1")
    assert fields(message) == {
        "type": MessageType.method_call,
        "destination": "org.freedesktop.portal.Desktop",
        "path": "/org/freedesktop/portal/desktop",
        "interface": "org.freedesktop.portal.GlobalShortcuts",
        "member": "CreateSession",
        "signature": "a{sv}",
    }
    assert message.body == ({"handle_token": ("s", "voicecoach_1"), "session_handle_token": ("s", "voicecoach_1")},)
    message.serialise(serial=1)  # the body fits its signature


def test_bind_shortcuts_message() -> None:
    message = bind_shortcuts(SESSION, BINDINGS, "voicecoach_2")
    assert fields(message)["member"] == "BindShortcuts"
    assert fields(message)["signature"] == "oa(sa{sv})sa{sv}"
    session, shortcuts, parent, options = message.body
    assert (session, parent, options) == (SESSION, "", {"handle_token": ("s", "voicecoach_2")})
    assert [name for name, _ in shortcuts] == ["hint", "stop"]
    hint = dict(shortcuts)["hint"]
    assert hint["preferred_trigger"] == ("s", "CTRL+ALT+h")
    assert hint["description"][0] == "s" and "hint" in hint["description"][1]
    message.serialise(serial=2)


def test_version_query_and_close_messages() -> None:
    query = version_query()
    assert fields(query)["interface"] == "org.freedesktop.DBus.Properties"
    assert query.body == ("org.freedesktop.portal.GlobalShortcuts", "version")
    close = close_session(SESSION)
    assert (fields(close)["path"], fields(close)["interface"], fields(close)["member"]) == (
        SESSION,
        "org.freedesktop.portal.Session",
        "Close",
    )
    query.serialise(serial=3)
    close.serialise(serial=4)


def test_request_path_follows_the_portal_rule() -> None:
    assert request_path(":1.42", "voicecoach_x") == "/org/freedesktop/portal/desktop/request/1_42/voicecoach_x"


def test_activated_is_matched_by_session() -> None:
    from jeepney import DBusAddress, new_signal

    where = DBusAddress("/org/freedesktop/portal/desktop", interface="org.freedesktop.portal.GlobalShortcuts")
    signal = new_signal(where, "Activated", "osta{sv}", (SESSION, "hint", 5, {}))
    assert activated_id(signal, SESSION) == "hint"
    assert activated_id(signal, SESSION + "_other") is None


def test_the_session_bus_address(tmp_path: Path) -> None:
    assert session_bus_address({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"}) == "unix:path=/x"
    assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) is None
    (tmp_path / "bus").touch()
    assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) == f"unix:path={tmp_path / 'bus'}"


# --- on a private bus -----------------------------------------------------------------------------------------


async def test_the_probe_without_a_bus(tmp_path: Path) -> None:
    assert await probe_portal({}) == "no-bus"
    assert await probe_portal({"DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/nothing"}) == "no-bus"


async def test_the_probe_on_a_bus_with_no_portal(tmp_path: Path) -> None:
    async with session_bus(tmp_path / "bus") as address:
        assert await probe_portal({"DBUS_SESSION_BUS_ADDRESS": address}) == "no-portal"


async def test_the_probe_on_a_portal_without_global_shortcuts(tmp_path: Path) -> None:
    async with session_bus(tmp_path / "bus") as address, FakePortal(address, global_shortcuts=False):
        assert await probe_portal({"DBUS_SESSION_BUS_ADDRESS": address}) == "no-global-shortcuts"


async def test_a_press_through_the_portal_reaches_the_loop(tmp_path: Path) -> None:
    pressed: asyncio.Queue[str] = asyncio.Queue()
    failures: list[str] = []
    async with session_bus(tmp_path / "bus") as address, FakePortal(address) as portal:
        environ = {"DBUS_SESSION_BUS_ADDRESS": address}
        assert await probe_portal(environ) == "available"
        hotkeys = PortalHotkeys(BINDINGS, pressed.put_nowait, failures.append, environ)
        assert await hotkeys.start() is None
        try:
            async with asyncio.timeout(10):
                await portal.bind_calls.wait()
            assert portal.bound == {
                "hint": {"description": "voicecoach: a quick hint", "preferred_trigger": "CTRL+ALT+h"},
                "stop": {"description": "voicecoach: stop the coach talking", "preferred_trigger": "CTRL+ALT+s"},
            }
            await portal.activate("stop")
            await portal.activate("not-ours")  # an id we did not bind is ignored
            await portal.activate("hint")
            async with asyncio.timeout(10):
                assert [await pressed.get(), await pressed.get()] == ["stop", "hint"]
        finally:
            await hotkeys.stop()
        assert portal.closed == portal.sessions and len(portal.sessions) == 1
        assert failures == []


async def test_a_refused_binding_says_so_once(tmp_path: Path) -> None:
    said: asyncio.Queue[str] = asyncio.Queue()
    async with session_bus(tmp_path / "bus") as address, FakePortal(address, refuse=True):
        hotkeys = PortalHotkeys(BINDINGS, lambda name: None, said.put_nowait, {"DBUS_SESSION_BUS_ADDRESS": address})
        assert await hotkeys.start() is None
        try:
            async with asyncio.timeout(10):
                line = await said.get()
        finally:
            await hotkeys.stop()
    assert line.startswith("hotkeys: off: the desktop refused the shortcuts (cancelled)"), line
    assert "voicecoach ctl hint" in line


async def test_start_without_a_portal_gives_the_reason(tmp_path: Path) -> None:
    async with session_bus(tmp_path / "bus") as address:
        hotkeys = PortalHotkeys(BINDINGS, lambda name: None, environ={"DBUS_SESSION_BUS_ADDRESS": address})
        problem = await hotkeys.start()
        await hotkeys.stop()
    assert problem is not None and "could not open a shortcuts session" in problem, problem
    assert "ServiceUnknown" in problem
