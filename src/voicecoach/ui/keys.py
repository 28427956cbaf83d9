"""The one key table: every key of both UIs, what it does, and the words line mode accepts for it.

The Textual bindings (:func:`textual_bindings`), line mode's lookup (:func:`parse_command`, :func:`lookup`) and
the help text of both (:func:`help_rows`, :func:`plain_help`) are all built from :data:`KEYS`, so a key cannot
do one thing and be documented as another. The coach knows nothing of keys: it only sees the
:class:`~voicecoach.coach.actions.Intent` a key stands for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..coach.actions import Intent

if TYPE_CHECKING:  # line mode reads this table too, and need not pay for importing Textual
    from textual.binding import Binding

Mode = Literal["both", "tui", "plain"]
HELP: Literal["help"] = "help"  # what `?` asks for in line mode (not an intent: the coach never sees it)


@dataclass(frozen=True)
class Key:
    """One entry of the table. ``keys`` are Textual key names ("space", "ctrl+c"); the first is the one shown.

    ``intent`` is what the key asks the coach for; ``action`` is the Textual action when it is not simply that
    intent (quit escalates, the log and dialogs are the UI's own). ``footer`` is the footer label ("" keeps it
    out of the footer). ``words`` are the whole-line commands line mode also accepts from a pipe or file.
    """

    keys: tuple[str, ...]
    does: str
    footer: str = ""
    intent: Intent | None = None
    action: str | None = None
    words: tuple[str, ...] = ()
    mode: Mode = "both"
    # Checked before the focused widget's own bindings (an Input's ctrl+c would copy instead of quitting).
    priority: bool = False
    plain_does: str | None = None  # when line mode does it differently

    @property
    def tui_action(self) -> str:
        if self.action is not None:
            return self.action
        assert self.intent is not None, f"key {self.keys[0]} has neither an action nor an intent"
        return f"intent('{self.intent.value}')"


KEYS: tuple[Key, ...] = (
    Key(("h",), "quick hint", "Quick hint", Intent.QUICK_HINT, words=("hint",)),
    Key(("g",), "full guidance", "Guidance", Intent.FULL_GUIDANCE, words=("guidance",)),
    Key(("i", "space"), "interrupt the coach at once", "Interrupt", Intent.INTERRUPT, words=("interrupt", "space")),
    Key(("m",), "mute / unmute the microphone (the session stays up)", "Mute", Intent.TOGGLE_MUTE, words=("mute",)),
    Key(("l",), "show / hide the event log (type in its box to filter)", "Log", action="toggle_log", mode="tui"),
    Key(("escape",), "leave the log filter (back to the transcript)", action="leave_filter", mode="tui"),
    Key(("s",), "settings: phrases, hint lengths, windows", "Settings", action="settings", mode="tui"),
    # Not in the footer: an 80-column footer has no room left (Help and Quit must stay); the settings screen has
    # a button for it, and the status bar names the active profile.
    Key(("p",), "profile: pick another (the next hint uses it)", action="profiles", mode="tui"),
    Key(("question_mark",), "this help", "Help", action="help", words=("help",)),
    Key(("q",), "quit (press again to force)", "Quit", Intent.QUIT, "quit", ("quit",), plain_does="quit"),
    Key(("ctrl+c",), "quit now (the transcript is saved; exit status 130)", action="interrupt_quit", priority=True),
)

# How a key is typed (line mode reads characters) and how it is written in help text.
_CHARACTERS = {"space": " ", "question_mark": "?"}
_DISPLAY = {"space": "space", "question_mark": "?", "escape": "Esc", "ctrl+c": "Ctrl-C"}


def _character(key: str) -> str:
    return _CHARACTERS.get(key, key)


def display(key: str) -> str:
    """A key as a user reads it: ``?``, ``space``, ``Esc``, ``Ctrl-C``."""
    return _DISPLAY.get(key, key)


def _in(entry: Key, mode: Literal["tui", "plain"]) -> bool:
    return entry.mode in ("both", mode)


# Line mode: a typed character → what it asks for. Ctrl-C is not read there: the terminal turns it into SIGINT.
_BY_CHARACTER: dict[str, Intent | Literal["help"]] = {
    _character(key): entry.intent or HELP
    for entry in KEYS
    if _in(entry, "plain") and (entry.intent is not None or entry.action == "help")
    for key in entry.keys
    if not key.startswith("ctrl+")
}
_BY_WORD: dict[str, Intent | Literal["help"]] = {
    word: entry.intent or HELP for entry in KEYS if _in(entry, "plain") for word in entry.words
}


def lookup(char: str) -> Intent | Literal["help"] | None:
    """What one typed character asks for in line mode (letters in either case), or None for no key."""
    return _BY_CHARACTER.get(char if char == " " else char.lower())


def intent_for_key(char: str) -> Intent | None:
    """The intent of one typed character, or None (``?`` and unknown characters are not intents)."""
    found = lookup(char)
    return found if isinstance(found, Intent) else None


def parse_command(line: str) -> Intent | Literal["help"] | None:
    """One line of script input: a key (h g i m q ?), a line of spaces, or a word (hint, guidance, help, …)."""
    if line.strip() == "" and " " in line:
        return Intent.INTERRUPT
    word = line.strip().lower()
    return _BY_WORD.get(word) or (lookup(word) if len(word) == 1 else None)


def textual_bindings() -> list[Binding]:
    """The full-screen UI's bindings: the first key of an entry is shown in the footer, the others are not."""
    from textual.binding import Binding

    bindings: list[Binding] = []
    for entry in KEYS:
        if not _in(entry, "tui"):
            continue
        for n, key in enumerate(entry.keys):
            bindings.append(
                Binding(
                    key,
                    entry.tui_action,
                    entry.footer or entry.does,
                    show=bool(entry.footer) and n == 0,
                    key_display=display(key) if key in _DISPLAY else None,
                    priority=entry.priority,
                )
            )
    return bindings


def tui_actions() -> frozenset[str]:
    """The action names the table binds (without their arguments), e.g. ``intent``, ``quit``."""
    return frozenset(entry.tui_action.split("(")[0] for entry in KEYS if _in(entry, "tui"))


def help_rows(mode: Literal["tui", "plain"]) -> list[tuple[str, str]]:
    """(keys as shown, what they do) for the help of one UI, in table order."""
    rows: list[tuple[str, str]] = []
    for entry in KEYS:
        if _in(entry, mode):
            shown = [display(k) for k in entry.keys]
            if mode == "plain":
                shown += [w for w in entry.words if w not in shown]
            rows.append((" / ".join(shown), entry.plain_does if mode == "plain" and entry.plain_does else entry.does))
    return rows


def plain_help() -> list[str]:
    """The key help line mode prints for ``?``, ``help`` and any unknown key or command."""
    rows = help_rows("plain")
    width = max(len(keys) for keys, _ in rows)
    return ["keys (on a pipe or file: one per line):", *(f"  {keys:<{width}}  {does}" for keys, does in rows)]
