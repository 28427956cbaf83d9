"""The hotkey mechanism decision, one case per branch of the table in voicecoach.hotkeys.choose."""

from __future__ import annotations

import pytest

from voicecoach.hotkeys.choose import (
    INSTALL,
    UNTRUSTED,
    Choice,
    Situation,
    choose,
    needs_portal,
    needs_trust,
    session_kind,
)
from voicecoach.hotkeys.settings import Mechanism


@pytest.mark.parametrize(
    ("platform", "environ", "kind"),
    [
        ("linux", {"DISPLAY": ":0"}, "x11"),
        ("linux", {"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}, "x11"),
        ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, "wayland"),
        ("linux", {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, "wayland"),  # XWayland is not the session
        ("linux", {"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"}, "wayland"),
        ("linux", {}, "none"),
        ("linux", {"XDG_SESSION_TYPE": "tty"}, "none"),  # SSH, a console
        ("freebsd14", {"DISPLAY": ":0"}, "x11"),
        ("darwin", {}, "macos"),
        ("win32", {}, "windows"),
    ],
)
def test_session_kind(platform: str, environ: dict[str, str], kind: str) -> None:
    assert session_kind(platform, environ) == kind


def both(kind: str, **facts: object) -> Situation:
    return Situation(kind, has_pynput=True, has_jeepney=True, **facts)  # type: ignore[arg-type]


CASES: list[tuple[str, Mechanism, Situation, Choice | str]] = [
    # (case, mechanism, situation, Choice or a fragment of the reason)
    ("off", "off", both("x11"), 'hotkeys.mechanism is "off"'),
    ("off on wayland", "off", both("wayland", portal="available"), 'hotkeys.mechanism is "off"'),
    ("x11", "auto", both("x11"), Choice("pynput", "X11 via pynput")),
    ("x11, pynput asked", "pynput", both("x11"), Choice("pynput", "X11 via pynput")),
    ("x11 without pynput", "auto", Situation("x11", False, True), f"pynput is not installed: {INSTALL}"),
    ("x11, portal asked", "portal", both("x11", portal="available"), Choice("portal", "X11 via the desktop portal")),
    ("x11, portal asked, none", "portal", both("x11", portal="no-portal"), 'set it to "auto" to use pynput'),
    (
        "wayland + portal",
        "auto",
        both("wayland", portal="available"),
        Choice("portal", "Wayland via the desktop portal"),
    ),
    (
        "wayland, portal without GlobalShortcuts",
        "auto",
        both("wayland", portal="no-global-shortcuts"),
        "Wayland session and the desktop portal has no GlobalShortcuts",
    ),
    ("wayland, no portal", "auto", both("wayland", portal="no-portal"), "no desktop portal (xdg-desktop-portal)"),
    ("wayland, no bus", "auto", both("wayland", portal="no-bus"), "no D-Bus session bus"),
    ("wayland, portal silent", "auto", both("wayland", portal="no-answer"), "did not answer in time"),
    ("wayland without jeepney", "auto", Situation("wayland", True, False), f"needs jeepney: {INSTALL}"),
    ("wayland, portal asked, none", "portal", both("wayland", portal="no-portal"), "voicecoach ctl hint"),
    (
        "wayland, pynput asked, XWayland",
        "pynput",
        both("wayland", display=":0"),
        Choice("pynput", "XWayland via pynput (heard only while an X11 window has the focus)"),
    ),
    ("wayland, pynput asked, no XWayland", "pynput", both("wayland"), "has no XWayland (DISPLAY is unset)"),
    ("no display", "auto", both("none"), "no display (DISPLAY and WAYLAND_DISPLAY are unset"),
    ("no display, pynput asked", "pynput", both("none"), "no display"),
    ("macos trusted", "auto", both("macos", mac_trusted=True), Choice("pynput", "macOS via pynput")),
    ("macos trust unknown", "auto", both("macos"), Choice("pynput", "macOS via pynput")),  # pynput checks again
    ("macos untrusted", "auto", both("macos", mac_trusted=False), UNTRUSTED),
    ("macos without pynput", "auto", Situation("macos", False, False), INSTALL),
    ("macos, portal asked", "portal", both("macos"), "the desktop portal is a Linux desktop service"),
    ("windows", "auto", both("windows"), Choice("pynput", "Windows via pynput")),
    ("windows without pynput", "pynput", Situation("windows", False, False), INSTALL),
    ("windows, portal asked", "portal", both("windows"), "Linux desktop service"),
]


@pytest.mark.parametrize(("mechanism", "situation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_choose(mechanism: Mechanism, situation: Situation, expected: Choice | str) -> None:
    choice = choose(mechanism, situation)
    if isinstance(expected, Choice):
        assert choice == expected
    else:
        assert choice.mechanism is None
        assert expected in choice.reason, choice.reason
        assert "\n" not in choice.reason


def test_every_off_reason_says_what_to_do() -> None:
    remedies = ("voicecoach ctl", "pip install", "hotkeys.mechanism", "System Settings")
    for _, mechanism, situation, _expected in CASES:
        choice = choose(mechanism, situation)
        if choice.mechanism is None:
            assert any(r in choice.reason for r in remedies), choice.reason


@pytest.mark.parametrize(
    ("kind", "mechanism", "has_jeepney", "asked"),
    [
        ("wayland", "auto", True, True),
        ("wayland", "portal", True, True),
        ("wayland", "auto", False, False),  # nothing to ask with
        ("wayland", "pynput", True, False),
        ("wayland", "off", True, False),
        ("x11", "auto", True, False),  # X11 never asks D-Bus unless the portal is asked for
        ("x11", "portal", True, True),
        ("none", "portal", True, False),
        ("macos", "portal", True, False),
    ],
)
def test_the_portal_is_probed_only_where_it_decides(
    kind: str, mechanism: Mechanism, has_jeepney: bool, asked: bool
) -> None:
    assert needs_portal(kind, mechanism, has_jeepney) is asked  # type: ignore[arg-type]


def test_trust_is_probed_only_on_macos_for_pynput() -> None:
    assert needs_trust("macos", "auto", True)
    assert needs_trust("macos", "pynput", True)
    assert not needs_trust("macos", "auto", False)
    assert not needs_trust("macos", "off", True)
    assert not needs_trust("x11", "auto", True)
