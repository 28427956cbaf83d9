"""Global hotkeys on Wayland: the desktop portal's ``org.freedesktop.portal.GlobalShortcuts`` over D-Bus.

The portal (xdg-desktop-portal ≥ 1.17 with a backend that has it: KDE Plasma 5.27+, GNOME 48+, Hyprland; not
wlroots/sway) binds shortcuts for an app in a session. The flow (the portal's documented protocol):

1. ``CreateSession({handle_token, session_handle_token})`` → a Request object; its ``Response`` signal carries
   ``session_handle``.
2. ``BindShortcuts(session, [(id, {description, preferred_trigger})], parent_window, {handle_token})`` → a
   Request; the desktop may show a dialog where the user confirms or changes the keys, so its ``Response``
   can take as long as the user does. It is awaited in the background, and only a refusal is reported.
3. ``Activated(session, id, timestamp, options)`` signals, one per press, for as long as the session lives.
4. ``org.freedesktop.portal.Session.Close`` on the session at the end.

A Request's object path is known in advance (``/org/freedesktop/portal/desktop/request/SENDER/TOKEN``), so its
Response is subscribed to before the call that creates it: no race with a fast portal.

The client is jeepney (pure Python, MIT, asyncio): the GNU AGPL ``global-shortcut-portal`` package is not an
option, and dbus-fast would be a compiled dependency for five method calls. The message builders are plain
functions (tested without a bus); :class:`PortalHotkeys` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jeepney import DBusAddress, DBusErrorResponse, HeaderFields, MatchRule, Message, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.asyncio import DBusRouter, open_dbus_router

from .choose import USE_CTL, PortalStatus
from .keys import Binding

log = logging.getLogger(__name__)

BUS_NAME = "org.freedesktop.portal.Desktop"
OBJECT_PATH = "/org/freedesktop/portal/desktop"
INTERFACE = "org.freedesktop.portal.GlobalShortcuts"
REQUEST_INTERFACE = "org.freedesktop.portal.Request"
SESSION_INTERFACE = "org.freedesktop.portal.Session"
PORTAL = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=INTERFACE)

PROBE_S = 3.0  # a portal started by D-Bus activation answers within a second or two
SESSION_S = 5.0  # CreateSession's Response: no dialog, immediate
BIND_S = 300.0  # BindShortcuts' Response: the user may be reading the desktop's dialog
CLOSE_S = 2.0
DESCRIPTIONS = {
    "hint": "voicecoach: a quick hint",
    "guide": "voicecoach: full guidance",
    "stop": "voicecoach: stop the coach talking",
    "mute": "voicecoach: mute the microphone",
}
# D-Bus errors that mean "no portal here" and "a portal without GlobalShortcuts".
NO_PORTAL = {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"}
NO_INTERFACE = {
    "org.freedesktop.DBus.Error.UnknownInterface",
    "org.freedesktop.DBus.Error.UnknownProperty",
    "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.DBus.Error.InvalidArgs",
}


class PortalRefused(Exception):
    """A portal Request ended with a non-zero response (1: cancelled by the user, 2: failed)."""


# --- messages (pure) ---------------------------------------------------------------------------------------


def session_bus_address(environ: Mapping[str, str]) -> str | None:
    """The session bus: ``DBUS_SESSION_BUS_ADDRESS``, else systemd's ``$XDG_RUNTIME_DIR/bus`` if it exists
    (where libdbus and sd-bus look too)."""
    if address := environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return address
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and (Path(runtime) / "bus").exists():
        return f"unix:path={Path(runtime) / 'bus'}"
    return None


def new_token() -> str:
    """A handle token: the portal allows only ASCII letters, digits and ``_``."""
    return f"voicecoach_{secrets.token_hex(6)}"


def request_path(unique_name: str, token: str) -> str:
    """Where the portal puts the Request a call with ``handle_token=token`` creates (the portal's rule)."""
    sender = unique_name.removeprefix(":").replace(".", "_")
    return f"{OBJECT_PATH}/request/{sender}/{token}"


def version_query() -> Message:
    """``Properties.Get(GlobalShortcuts, "version")``: fails unless the portal has the interface."""
    properties = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface="org.freedesktop.DBus.Properties")
    return new_method_call(properties, "Get", "ss", (INTERFACE, "version"))


def create_session(token: str) -> Message:
    options = {"handle_token": ("s", token), "session_handle_token": ("s", token)}
    return new_method_call(PORTAL, "CreateSession", "a{sv}", (options,))


def bind_shortcuts(session: str, bindings: Mapping[str, Binding], token: str) -> Message:
    shortcuts = [
        (name, {"description": ("s", DESCRIPTIONS.get(name, name)), "preferred_trigger": ("s", b.portal_trigger())})
        for name, b in bindings.items()
    ]
    # parent_window "": a terminal has no window handle the portal could use
    return new_method_call(
        PORTAL, "BindShortcuts", "oa(sa{sv})sa{sv}", (session, shortcuts, "", {"handle_token": ("s", token)})
    )


def close_session(session: str) -> Message:
    return new_method_call(DBusAddress(session, bus_name=BUS_NAME, interface=SESSION_INTERFACE), "Close")


def response_rule(path: str) -> MatchRule:
    return MatchRule(type="signal", interface=REQUEST_INTERFACE, member="Response", path=path)


def activated_rule() -> MatchRule:
    # No sender: the bus matches the well-known name, but jeepney's local matching sees the unique name.
    return MatchRule(type="signal", interface=INTERFACE, member="Activated", path=OBJECT_PATH)


def activated_id(message: Message, session: str) -> str | None:
    """The shortcut id of an ``Activated`` signal for ``session``, else None."""
    body = message.body
    if len(body) >= 2 and body[0] == session and isinstance(body[1], str):
        return body[1]
    return None


def error_name(reply: Message) -> str | None:
    if reply.header.message_type is not MessageType.error:
        return None
    name: str = reply.header.fields.get(HeaderFields.error_name, "")
    return name


# --- the probe -----------------------------------------------------------------------------------------------


async def probe_portal(environ: Mapping[str, str] | None = None) -> PortalStatus:
    """Whether the session bus has a portal with GlobalShortcuts; never raises (bounded by ``PROBE_S``)."""
    address = session_bus_address(os.environ if environ is None else environ)
    if address is None:
        return "no-bus"
    try:
        async with asyncio.timeout(PROBE_S), open_dbus_router(address) as router:
            reply = await router.send_and_get_reply(version_query())
    except TimeoutError:
        return "no-answer"
    except (OSError, EOFError, RuntimeError, ValueError, KeyError) as exc:  # no bus there, or not one we speak
        log.debug("session bus %s: %r", address, exc)
        return "no-bus"
    name = error_name(reply)
    if name is None:
        return "available"
    log.debug("portal probe: %s %s", name, reply.body)
    return "no-portal" if name in NO_PORTAL else "no-global-shortcuts" if name in NO_INTERFACE else "no-answer"


# --- the session ---------------------------------------------------------------------------------------------


class _CallingQueue(asyncio.Queue[Any]):
    """A queue jeepney's router fills, which calls ``callback`` instead of storing: each matching signal is
    handled as it arrives, with no reader task to own and no queue to drain."""

    def __init__(self, callback: Callable[[Any], None]) -> None:
        super().__init__()
        self._callback = callback

    def put_nowait(self, item: Any) -> None:
        try:
            self._callback(item)
        except Exception:  # an exception here would end jeepney's receiver task, and every later signal
            log.exception("hotkeys: portal signal handler failed")


class PortalHotkeys:
    """``bindings`` bound through the portal; ``on_press(command)`` on the loop for each ``Activated``.

    :meth:`start` once (None, or why not), :meth:`stop` once. ``on_failure(line)`` is called later if the
    desktop refuses the shortcuts (its dialog cancelled) or the binding fails.
    """

    def __init__(
        self,
        bindings: Mapping[str, Binding],
        on_press: Callable[[str], None],
        on_failure: Callable[[str], None] = lambda line: None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._bindings = dict(bindings)
        self._on_press = on_press
        self._on_failure = on_failure
        self._environ = os.environ if environ is None else environ
        self._stack = contextlib.AsyncExitStack()
        self._router: DBusRouter | None = None
        self._session: str | None = None
        self._bind: asyncio.Task[None] | None = None
        self.bound: list[Any] = []  # the shortcuts as the desktop bound them (BindShortcuts' results)

    async def start(self) -> str | None:
        address = session_bus_address(self._environ)
        if address is None:
            return "there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset) to reach the desktop portal"
        try:
            async with asyncio.timeout(SESSION_S):
                router = await self._stack.enter_async_context(open_dbus_router(address))
                self._router = router
                await self._subscribe(router, activated_rule(), self._activated)
                token = new_token()
                results = await self._request(router, create_session(token), token)
                self._session = str(results["session_handle"][1])
        except Exception as exc:  # TimeoutError, OSError, DBusErrorResponse, PortalRefused, a malformed reply
            await self.stop()
            return f"the desktop portal could not open a shortcuts session ({_describe(exc)})"
        self._bind = asyncio.create_task(self._bind_shortcuts(router, self._session), name="hotkeys-portal-bind")
        return None

    async def stop(self) -> None:
        bind, self._bind = self._bind, None
        if bind is not None:
            bind.cancel()
            await asyncio.gather(bind, return_exceptions=True)
        session, self._session = self._session, None
        router = self._router
        if session is not None and router is not None:
            try:
                async with asyncio.timeout(CLOSE_S):
                    await router.send_and_get_reply(close_session(session))
            except Exception as exc:  # the bus or the portal is gone: the session ends with our connection
                log.debug("portal session close: %r", exc)
        self._router = None
        try:
            await self._stack.aclose()
        except Exception as exc:  # jeepney re-raises its receiver task's failure (a bus that went away)
            log.debug("portal connection close: %r", exc)

    async def _bind_shortcuts(self, router: DBusRouter, session: str) -> None:
        token = new_token()
        try:
            results = await self._request(router, bind_shortcuts(session, self._bindings, token), token, BIND_S)
        except PortalRefused as exc:
            self._on_failure(f"hotkeys: off: the desktop refused the shortcuts ({exc}); {USE_CTL}")
            return
        except TimeoutError:
            log.debug("BindShortcuts: no answer within %g s (a dialog still open?)", BIND_S)
            return
        except Exception as exc:
            self._on_failure(f"hotkeys: off: the desktop portal could not bind the shortcuts ({_describe(exc)})")
            return
        self.bound = list(results.get("shortcuts", ("", []))[1])
        log.debug("portal bound: %s", self.bound)

    def _activated(self, message: Message) -> None:
        if self._session is None:
            return
        name = activated_id(message, self._session)
        if name in self._bindings:
            self._on_press(name)

    async def _subscribe(self, router: DBusRouter, rule: MatchRule, callback: Callable[[Any], None]) -> None:
        """Ask the bus for the signals ``rule`` matches and call ``callback`` on each, until :meth:`stop`."""
        reply = await router.send_and_get_reply(message_bus.AddMatch(rule))
        if error_name(reply) is not None:
            raise DBusErrorResponse(reply)
        self._stack.enter_context(router.filter(rule, queue=_CallingQueue(callback)))

    async def _request(
        self, router: DBusRouter, call: Message, token: str, limit_s: float = SESSION_S
    ) -> dict[str, Any]:
        """Call a portal method that answers through a Request object; the Response's results."""
        path = request_path(router.unique_name, token)
        response: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def answered(message: Any) -> None:
            if not response.done():
                response.set_result(message)

        rule = response_rule(path)
        reply = await router.send_and_get_reply(message_bus.AddMatch(rule))
        if error_name(reply) is not None:
            raise DBusErrorResponse(reply)
        with router.filter(rule, queue=_CallingQueue(answered)):
            reply = await router.send_and_get_reply(call)
            if error_name(reply) is not None:
                raise DBusErrorResponse(reply)
            async with asyncio.timeout(limit_s):
                message = await response
        code, results = message.body
        if code != 0:
            raise PortalRefused("cancelled" if code == 1 else f"response {code}")
        return dict(results)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, DBusErrorResponse):
        return f"{exc.name}: {' '.join(str(part) for part in exc.data)}"[:200]
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
