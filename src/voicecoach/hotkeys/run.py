"""``hotkeys_running``: what ``voicecoach run`` and ``demo`` enter to have global hotkeys for the run's length.

It never ends or fails the run: whatever goes wrong becomes the one start-up line that says why the hotkeys
are off and what to do instead (``voicecoach ctl`` bound in the desktop's own shortcut settings works
everywhere). Each press gives ``controls.run(command, source="hotkey")`` on the event loop, the same call the
``voicecoach ctl`` socket makes, so a hotkey does exactly what ``voicecoach ctl hint`` does (the mute key
toggles, as the terminal's key does).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from .choose import Situation, choose, needs_portal, needs_trust, session_kind
from .keys import Binding
from .pynput_keys import PynputHotkeys
from .settings import HotkeySettings

log = logging.getLogger(__name__)


class RunsCommands(Protocol):
    """What a hotkey drives: :class:`voicecoach.control.Controls` (``run`` answers a Reply with ok and line)."""

    def run(self, command: str, source: str = ...) -> Any: ...


class Backend(Protocol):
    async def start(self) -> str | None: ...
    async def stop(self) -> None: ...


def hotkeys_running(
    settings: HotkeySettings, controls: RunsCommands, say: Callable[[str], None]
) -> AbstractAsyncContextManager[None]:
    """Listen for ``settings``' hotkeys while the block runs; ``say`` gets the start-up line (and later ones).

    No bindings: nothing is said and nothing is loaded. Otherwise exactly one line at start, either
    ``hotkeys: X11 via pynput: hint <ctrl>+<alt>+h, stop <ctrl>+<alt>+s`` or ``hotkeys: off: <why; what to do>``.
    Later lines only when the mechanism fails or the desktop refuses the keys, and when a command a press gave
    is refused (``hotkey mute: already muted``). On exit the listener is stopped (its thread joined).
    """
    return _running(settings, controls, say)


@asynccontextmanager
async def _running(settings: HotkeySettings, controls: RunsCommands, say: Callable[[str], None]) -> AsyncIterator[None]:
    bindings = settings.bindings()
    if not bindings:
        yield
        return
    if not settings.enabled:
        say("hotkeys: off (hotkeys.enabled is false)")
        yield
        return

    def press(name: str) -> None:
        command = _toggled(controls) if name == "mute" else name
        reply = controls.run(command, source="hotkey")
        if getattr(reply, "ok", True) is False:
            say(f"hotkey {name}: {getattr(reply, 'line', 'refused')}")

    backend: Backend | None = None
    try:
        line, backend = await _start(settings, bindings, press, say)
    except Exception as exc:  # a bug or an unforeseen platform failure must not end the run
        log.debug("hotkeys failed to start", exc_info=True)
        line = f"hotkeys: off: could not start ({type(exc).__name__}: {exc})"
    say(line)
    try:
        yield
    finally:
        if backend is not None:
            await backend.stop()


async def _start(
    settings: HotkeySettings, bindings: Mapping[str, Binding], press: Callable[[str], None], say: Callable[[str], None]
) -> tuple[str, Backend | None]:
    """The start-up line, and the running backend (None when the hotkeys are off)."""
    mechanism = settings.mechanism
    kind = session_kind(sys.platform, os.environ)
    has_pynput, has_jeepney = _installed("pynput"), _installed("jeepney")
    portal = None
    if needs_portal(kind, mechanism, has_jeepney):
        from .portal import probe_portal  # jeepney: only imported where the portal is a candidate

        portal = await probe_portal()
    trusted = _mac_trusted() if needs_trust(kind, mechanism, has_pynput) else None
    situation = Situation(kind, has_pynput, has_jeepney, os.environ.get("DISPLAY", ""), portal, trusted)
    choice = choose(mechanism, situation)
    log.debug("hotkeys: %s → %s", situation, choice)
    if choice.mechanism is None:
        return f"hotkeys: off: {choice.reason}", None
    backend: Backend
    if choice.mechanism == "portal":
        from .portal import PortalHotkeys

        backend = PortalHotkeys(bindings, press, say)
    else:
        backend = PynputHotkeys(bindings, press, say)
    try:
        problem = await backend.start()
    except BaseException:  # cancelled while starting (the run ended at once): leave nothing listening
        await backend.stop()
        raise
    if problem is not None:
        return f"hotkeys: off: {problem}", None
    keys = ", ".join(f"{name} {binding}" for name, binding in bindings.items())
    confirm = " (the desktop may ask you to confirm them)" if choice.mechanism == "portal" else ""
    return f"hotkeys: {choice.where}: {keys}{confirm}", backend


def _toggled(controls: RunsCommands) -> str:
    """The mute key toggles, like the terminal's ``m``: ``unmute`` when the status says muted, else ``mute``
    (``voicecoach ctl mute`` is idempotent instead, which suits a script but not one key)."""
    status = getattr(controls.run("status", source="hotkey"), "status", None) or {}
    return "unmute" if status.get("muted") else "mute"


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a half-imported or blocked package counts as missing
        return False


def _mac_trusted() -> bool | None:
    """macOS's Accessibility trust for this process (pyobjc's HIServices, which pynput needs there), or None."""
    try:
        services = importlib.import_module("HIServices")
        return bool(services.AXIsProcessTrusted())
    except Exception:  # not knowable here: pynput's listener checks again when it starts
        return None
