"""Which hotkey mechanism works here, or the one-line reason why none does. Pure: facts in, a decision out.

The facts (:class:`Situation`) are the platform, the display variables, which optional packages are
installed, and two probes that only some branches need: whether the desktop portal offers GlobalShortcuts
(asked over D-Bus, so only on Wayland or when the portal is asked for: :func:`needs_portal`) and whether macOS
trusts this process with input monitoring (:func:`needs_trust`). :mod:`.run` gathers them; everything here is
a table of cases, tested one by one.

    mechanism   session      result
    off         any          none: "hotkeys.mechanism is off"
    any         none         none: no display (SSH, a console)
    auto        x11          pynput
    auto        wayland      portal if it has GlobalShortcuts, else none (pynput would only hear XWayland windows)
    auto        macos        pynput if trusted (Accessibility), else none
    auto        windows      pynput
    pynput      wayland      pynput through XWayland if DISPLAY is set (said so), else none
    portal      x11/wayland  portal if it has GlobalShortcuts, else none
    portal      macos/win    none: the portal is a Linux desktop service
    (a branch whose package is missing: none, "pip install 'voicecoach[hotkeys]'")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .settings import Mechanism

Kind = Literal["x11", "wayland", "macos", "windows", "none"]
# What the portal probe found (portal.probe_portal): usable, or which step failed.
PortalStatus = Literal["available", "no-bus", "no-portal", "no-global-shortcuts", "no-answer"]

INSTALL = "pip install 'voicecoach[hotkeys]'"
USE_CTL = "bind `voicecoach ctl hint` in your desktop's shortcut settings instead"
PORTAL_PROBLEMS: dict[PortalStatus, str] = {
    "available": "the desktop portal has GlobalShortcuts",
    "no-bus": "there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset) to reach the desktop portal",
    "no-portal": "there is no desktop portal (xdg-desktop-portal) on the session bus",
    "no-global-shortcuts": "the desktop portal has no GlobalShortcuts (none on sway and other wlroots desktops)",
    "no-answer": "the desktop portal did not answer in time",
}
UNTRUSTED = (
    "macOS has not given this terminal the Accessibility permission; add your terminal app (Terminal, iTerm2, "
    "VS Code, ...) in System Settings > Privacy & Security > Accessibility and Input Monitoring and restart it, "
    "or bind `voicecoach ctl hint` in the Shortcuts app instead"
)


@dataclass(frozen=True)
class Situation:
    """The facts a decision needs. ``portal``/``mac_trusted`` are None when not probed (or not knowable)."""

    kind: Kind
    has_pynput: bool
    has_jeepney: bool
    display: str = ""  # DISPLAY, for "XWayland via pynput"
    portal: PortalStatus | None = None
    mac_trusted: bool | None = None


@dataclass(frozen=True)
class Choice:
    """``mechanism`` with a short ``where`` ("X11 via pynput"), or None with the ``reason`` (what to do too)."""

    mechanism: Literal["pynput", "portal"] | None
    where: str = ""
    reason: str = ""


def session_kind(platform: str, environ: Mapping[str, str]) -> Kind:
    """The desktop this process runs in, from ``sys.platform`` and the display variables."""
    if platform == "win32":
        return "windows"
    if platform == "darwin":
        return "macos"
    if environ.get("WAYLAND_DISPLAY") or environ.get("XDG_SESSION_TYPE", "").lower() == "wayland":
        return "wayland"
    if environ.get("DISPLAY"):
        return "x11"
    return "none"


def needs_portal(kind: Kind, mechanism: Mechanism, has_jeepney: bool) -> bool:
    """Whether :func:`choose` will look at the portal probe (so only then is D-Bus asked)."""
    if not has_jeepney or kind in ("macos", "windows", "none"):
        return False
    return mechanism == "portal" or (mechanism == "auto" and kind == "wayland")


def needs_trust(kind: Kind, mechanism: Mechanism, has_pynput: bool) -> bool:
    """Whether :func:`choose` will look at macOS's Accessibility trust."""
    return kind == "macos" and has_pynput and mechanism in ("auto", "pynput")


def choose(mechanism: Mechanism, situation: Situation) -> Choice:
    s = situation
    if mechanism == "off":
        return Choice(None, reason='hotkeys.mechanism is "off"')
    if s.kind == "none":
        return Choice(
            None,
            reason="no display (DISPLAY and WAYLAND_DISPLAY are unset, as over SSH); bind `voicecoach ctl hint` "
            "in the shortcut settings of the desktop you use, or start voicecoach inside it",
        )
    if s.kind in ("macos", "windows"):
        if mechanism == "portal":
            return Choice(None, reason='the desktop portal is a Linux desktop service; set hotkeys.mechanism = "auto"')
        if not s.has_pynput:
            return Choice(None, reason=f"pynput is not installed: {INSTALL}")
        if s.kind == "macos" and s.mac_trusted is False:
            return Choice(None, reason=UNTRUSTED)
        return Choice("pynput", "macOS via pynput" if s.kind == "macos" else "Windows via pynput")
    if mechanism == "portal" or (mechanism == "auto" and s.kind == "wayland"):
        return _portal(mechanism, s)
    # pynput, on X11 (auto or asked for) or on Wayland (asked for: it hears only XWayland windows)
    if not s.has_pynput:
        return Choice(None, reason=f"pynput is not installed: {INSTALL}")
    if s.kind == "x11":
        return Choice("pynput", "X11 via pynput")
    if not s.display:
        return Choice(
            None,
            reason='hotkeys.mechanism is "pynput" but this Wayland session has no XWayland (DISPLAY is unset); '
            f'set it to "auto" to use the desktop portal, or {USE_CTL}',
        )
    return Choice("pynput", "XWayland via pynput (heard only while an X11 window has the focus)")


def _portal(mechanism: Mechanism, s: Situation) -> Choice:
    where = "Wayland" if s.kind == "wayland" else "X11"
    if not s.has_jeepney:
        return Choice(None, reason=f"{where} session: the desktop portal client needs jeepney: {INSTALL}")
    if s.portal == "available":
        return Choice("portal", f"{where} via the desktop portal")
    problem = PORTAL_PROBLEMS[s.portal or "no-answer"]
    if s.kind == "x11":  # only when the portal was asked for: pynput would have worked
        return Choice(None, reason=f'hotkeys.mechanism is "portal" and {problem}; set it to "auto" to use pynput')
    return Choice(None, reason=f"Wayland session and {problem}; {USE_CTL}")
