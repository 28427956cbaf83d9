"""A hotkey binding as the user writes it (``"<ctrl>+<alt>+h"``), parsed, checked and normalised.

Pure: no pynput, no D-Bus. The grammar is pynput's (``HotKey.parse``): parts joined by ``+``, a single character
or a ``<name>``. Bare names (``ctrl+alt+h``) and any case are accepted too, since that is how people write
shortcuts; the normal form is pynput's: modifiers in a fixed order, then the one key, all lower case.

A binding is some modifiers and exactly one key. A printable key needs ``<ctrl>``, ``<alt>`` or ``<cmd>``: the
listener only listens (it does not take the key away from the focused window), so ``h`` or ``<shift>+h``
alone would fire on ordinary typing.

Names are the ones every pynput backend knows (X11, macOS, Windows); the XDG shortcut names the desktop
portal wants (``CTRL+ALT+h``, keysyms) are derived from them (:meth:`Binding.portal_trigger`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

# Canonical order of the normal form.
MODIFIERS = ("ctrl", "alt", "shift", "cmd")
MODIFIER_ALIASES = {
    "control": "ctrl",
    "ctl": "ctrl",
    "option": "alt",
    "opt": "alt",
    "super": "cmd",
    "win": "cmd",
    "windows": "cmd",
    "command": "cmd",
    "meta": "cmd",
}
# The pynput name → its X keysym name (the portal's triggers are keysyms, per the XDG shortcuts spec).
NAMED_KEYS: dict[str, str] = {
    "space": "space",
    "tab": "Tab",
    "enter": "Return",
    "esc": "Escape",
    "backspace": "BackSpace",
    "delete": "Delete",
    "insert": "Insert",
    "home": "Home",
    "end": "End",
    "page_up": "Page_Up",
    "page_down": "Page_Down",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "menu": "Menu",
    "pause": "Pause",
    "print_screen": "Print",
    "scroll_lock": "Scroll_Lock",
    "num_lock": "Num_Lock",
    "media_play_pause": "XF86AudioPlay",
    "media_next": "XF86AudioNext",
    "media_previous": "XF86AudioPrev",
    "media_volume_mute": "XF86AudioMute",
    "media_volume_up": "XF86AudioRaiseVolume",
    "media_volume_down": "XF86AudioLowerVolume",
    **{f"f{n}": f"F{n}" for n in range(1, 21)},
}
KEY_ALIASES = {
    "return": "enter",
    "escape": "esc",
    "del": "delete",
    "ins": "insert",
    "pgup": "page_up",
    "pageup": "page_up",
    "pgdn": "page_down",
    "pagedown": "page_down",
    "print": "print_screen",
}
PORTAL_MODIFIERS = {"ctrl": "CTRL", "alt": "ALT", "shift": "SHIFT", "cmd": "LOGO"}
EXAMPLE = '"<ctrl>+<alt>+h"'


@dataclass(frozen=True)
class Binding:
    """Modifiers (canonical order) and one key: a single lower-case character or a name of :data:`NAMED_KEYS`."""

    modifiers: tuple[str, ...]
    key: str

    def __str__(self) -> str:
        """The normal form, which is also what pynput's ``GlobalHotKeys`` takes."""
        key = self.key if len(self.key) == 1 else f"<{self.key}>"
        return "+".join([*(f"<{m}>" for m in self.modifiers), key])

    def portal_trigger(self) -> str:
        """The XDG shortcuts form the portal's ``preferred_trigger`` takes: ``CTRL+ALT+h``, ``LOGO+F9``."""
        key = NAMED_KEYS.get(self.key, self.key)
        return "+".join([*(PORTAL_MODIFIERS[m] for m in self.modifiers), key])


def parse_binding(text: str) -> Binding:
    """Parse and normalise ``text``; ValueError with a one-line message that says what to write instead."""
    if not text.strip():
        raise ValueError(f"is empty; give keys like {EXAMPLE}, or leave the key out to bind nothing")
    modifiers: list[str] = []
    keys: list[str] = []
    for raw in _parts(text.strip()):
        kind, name = _name_of(raw)
        if kind == "modifier":
            if name in modifiers:
                raise ValueError(f"<{name}> is given twice in {text!r}")
            modifiers.append(name)
        else:
            if name in keys:
                raise ValueError(f"{_shown(name)} is given twice in {text!r}")
            keys.append(name)
    if not keys:
        raise ValueError(f"{text!r} has only modifiers; end it with a key, like {EXAMPLE}")
    if len(keys) > 1:
        shown = " and ".join(_shown(k) for k in keys)
        raise ValueError(f"{text!r} has two keys ({shown}); a hotkey is modifiers and one key, like {EXAMPLE}")
    [key] = keys
    if len(key) == 1 and not set(modifiers) & {"ctrl", "alt", "cmd"}:
        # Listening is not grabbing: the key still reaches the focused window, and would fire while typing.
        raise ValueError(
            f"{text!r} would fire on ordinary typing; add <ctrl>, <alt> or <cmd>, like {EXAMPLE} (or use an "
            'F-key, like "<f9>")'
        )
    return Binding(tuple(m for m in MODIFIERS if m in modifiers), key)


def _parts(text: str) -> list[str]:
    """Split on ``+`` the way pynput does: a ``+`` right after a separator is the key ``+`` itself."""
    parts: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if ch == "+" and i != start:
            parts.append(text[start:i])
            start = i + 1
    if start == len(text):
        raise ValueError(f"{text!r} ends with '+'; end it with a key, like {EXAMPLE}")
    parts.append(text[start:])
    return parts


def _name_of(raw: str) -> tuple[str, str]:
    """("modifier" | "key", canonical name) of one part."""
    part = raw.strip()
    if len(part) == 1:
        if not part.isprintable() or part.isspace():
            raise ValueError(f"{raw!r} is not a key; write <space>, <tab> and the like by name")
        return "key", part.lower()
    inner = part[1:-1] if len(part) > 2 and part[0] == "<" and part[-1] == ">" else part
    name = inner.strip().lower().replace("-", "_").replace(" ", "_")
    name = MODIFIER_ALIASES.get(name, name)
    if name in MODIFIERS:
        return "modifier", name
    name = KEY_ALIASES.get(name, name)
    if name in NAMED_KEYS:
        return "key", name
    known = [*MODIFIERS, *NAMED_KEYS]
    near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean <{near[0]}>?" if near else "keys are one character or a name"
    raise ValueError(
        f"{_quoted(raw)} is not a key name; {hint} (names: {', '.join(MODIFIERS)}, space, tab, enter, esc, "
        "f1-f20, home, end, page_up, page_down, up, down, left, right, delete, insert, media_play_pause, ...)"
    )


def _shown(name: str) -> str:
    return name if len(name) == 1 else f"<{name}>"


def _quoted(raw: str) -> str:
    # A name may hold anything a TOML string can, a newline included: quoted, the error stays one line.
    return raw if raw.isprintable() else repr(raw)
