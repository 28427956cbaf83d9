"""Control from outside the terminal: the commands ``voicecoach ctl`` and the global hotkeys give a running session.

:class:`Controls` turns a command name into what a key would do, on the event loop thread, within the call:
``hint`` and ``guide`` ask for a quick hint or full guidance, ``stop`` interrupts the coach, ``mute`` and
``unmute`` set the microphone (idempotent, unlike the key, which toggles), ``status`` describes the session in
one line and as data. Each answers with a :class:`Reply` the caller shows as it is.

:func:`remote_controls` is what ``voicecoach run`` and ``voicecoach demo`` enter around a session: the control
socket (:mod:`voicecoach.ctl.server`) and the global hotkeys (:mod:`voicecoach.hotkeys.run`), each saying in
one line what it offers, or why it cannot (and the run goes on).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .coach.actions import Action, Intent, Interrupted, Notice, Send
from .coach.labels import TIER_LABELS, transport_label
from .ctl.server import serving
from .ctl.wire import COMMANDS
from .hotkeys.run import hotkeys_running
from .hotkeys.settings import HotkeySettings
from .protocol import client_events as ce

if TYPE_CHECKING:
    from .runner import Runner  # the runner imports half the program; Controls only reads it

__all__ = ["COMMANDS", "Controls", "Reply", "remote_controls"]

Say = Callable[[str], None]
SHORT_HINT_CHARS = 60  # of the last hint, in the status line
STATUS_HINT_CHARS = 300  # of the last hint, in the status data (a reply stays far below the wire's 4 KiB)


@dataclass(frozen=True)
class Reply:
    """What a command did: ``ok`` (it acted, or there was nothing to do: "already muted"), a line for the person,
    and for ``status`` the figures as data (``voicecoach ctl status --json``)."""

    ok: bool
    line: str
    status: dict[str, Any] | None = None


class Controls:
    """The session's commands for callers outside the terminal. Call :meth:`run` on the event loop thread only.

    ``runner`` gives the current session's runner, or None before the UI has made it (the full-screen UI makes
    its runner once it is mounted); ``profile`` gives the active profile's name (None: none), which the
    full-screen UI can switch while the session runs.
    """

    def __init__(self, runner: Callable[[], Runner | None], profile: Callable[[], str | None]) -> None:
        self._runner = runner
        self._profile = profile

    def run(self, command: str, source: str = "ctl") -> Reply:
        """Carry out ``command`` (one of :data:`COMMANDS`) now; ``source`` ("ctl", "hotkey") is named where the
        session records who asked (an interrupt's record)."""
        if command == "status":
            return self.status()
        if command not in COMMANDS:
            return Reply(False, f"unknown command {command!r}: choose one of {', '.join(COMMANDS)}")
        runner = self._runner()
        if runner is None:
            return Reply(False, "the session is starting: try again in a moment")
        if runner.stopping:
            return Reply(False, "the session is ending")
        match command:
            case "hint":
                return _ask(runner, Intent.QUICK_HINT, TIER_LABELS["quick"], source)
            case "guide":
                return _ask(runner, Intent.FULL_GUIDANCE, TIER_LABELS["full"], source)
            case "stop":
                return _stop(runner, source)
            case _:
                return _mute(runner, command == "mute", source)

    def status(self) -> Reply:
        """The session in one line (state, transport, profile, last hint, cost) and the same as data."""
        runner = self._runner()
        profile = self._profile()
        if runner is None:
            state, transport, muted, hint, cost = "starting", "", False, "", 0.0
        else:
            coach = runner.coach
            state = "ending" if runner.stopping else coach.state.value
            transport, muted, cost = runner.report.transport, coach.user_muted, coach.cost_usd
            hint = next((m.text for m in reversed(coach.conversation.messages()) if m.role == "coach" and m.text), "")
        status: dict[str, Any] = {
            "state": state,
            "transport": transport or None,
            "profile": profile,
            "muted": muted,
            "last_hint": _shorten(hint, STATUS_HINT_CHARS) or None,
            "cost_usd": round(cost, 6),
            "pid": os.getpid(),
        }
        parts = [state]
        if transport:
            parts.append(transport_label(transport))
        parts.append(f"profile {profile}" if profile else "no profile")
        parts.append(f'last hint "{_shorten(hint, SHORT_HINT_CHARS)}"' if hint else "no hint yet")
        parts.append(f"${cost:.4f} estimated")
        return Reply(True, " · ".join(parts), status)


def _ask(runner: Runner, intent: Intent, tier: str, source: str) -> Reply:
    actions = runner.command(intent, source)
    if actions is None:
        return Reply(True, f"not connected yet: the {tier} is asked for once the session is ready")
    if any(isinstance(a, Send) and isinstance(a.event, ce.ResponseCreate) for a in actions):
        return Reply(True, _said(actions) or f"{tier} requested")
    return Reply(False, _said(actions) or f"the {tier} was not requested")


def _stop(runner: Runner, source: str) -> Reply:
    if not runner.coach.live:  # not queued like a hint: by the time the session is up there is nothing to stop
        return Reply(True, "nothing to interrupt (not connected)")
    actions = runner.command(Intent.INTERRUPT, source) or []
    cut = next((a for a in actions if isinstance(a, Interrupted)), None)
    return Reply(True, cut.text if cut is not None else _said(actions) or "nothing to interrupt")


def _mute(runner: Runner, mute: bool, source: str) -> Reply:
    coach = runner.coach
    if not coach.live:  # a toggle queued now could land on either side: refuse rather than guess
        return Reply(False, f"not connected yet: nothing to {'mute' if mute else 'unmute'}")
    if coach.user_muted == mute:
        return Reply(True, "already muted" if mute else "already unmuted")
    runner.command(Intent.TOGGLE_MUTE, source)
    return Reply(True, "muted: the microphone sends silence" if mute else "unmuted: the microphone is live")


def _said(actions: list[Action]) -> str:
    """The last thing the coach told the person among ``actions`` (its notice), or ""."""
    notices = [a.text for a in actions if isinstance(a, Notice) and a.level != "debug"]
    return notices[-1] if notices else ""


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@asynccontextmanager
async def remote_controls(controls: Controls, hotkeys: HotkeySettings, say: Say) -> AsyncIterator[None]:
    """The control socket and the global hotkeys, for the body's duration. ``say`` gets one line from each at
    start (what it offers, or why not) and any line either has later; it is called on the event loop thread."""
    async with serving(controls, say) as path:
        if path is not None:
            say(f"control: voicecoach ctl {'|'.join(COMMANDS)} (socket {path})")
        async with hotkeys_running(hotkeys, controls, say):
            yield
