"""The settings (``s``) and help (``?``) screens of the terminal UI."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ..coach.settings import CoachSettings
from .keys import help_rows

PHRASE_FIELDS = ("quick_phrases", "full_phrases", "interrupt_phrases")
FORM_FIELDS: dict[str, str] = {
    "quick_phrases": "Quick hint phrases",
    "full_phrases": "Full guidance phrases",
    "interrupt_phrases": "Interrupt phrases",
    "quick_seconds": "Quick hint length (s)",
    "full_seconds": "Full guidance length (s)",
    "quick_window": "Quick hint window (messages)",
    "full_window": "Full guidance window (messages)",
}


def phrases_to_field(phrases: list[str]) -> str:
    """Comma-separated for editing. A comma *inside* a phrase ("thanks, got it") becomes a space: matching
    ignores punctuation anyway, and keeping it would split the phrase in two when the field is read back."""
    return ", ".join(" ".join(p.replace(",", " ").split()) for p in phrases)


def field_to_phrases(value: str) -> list[str]:
    return [" ".join(part.split()) for part in value.split(",") if part.strip()]


def form_values(settings: CoachSettings) -> dict[str, str]:
    """The text each form field starts with."""
    values: dict[str, str] = {}
    for name in FORM_FIELDS:
        value = getattr(settings, name)
        values[name] = phrases_to_field(value) if name in PHRASE_FIELDS else f"{value:g}"
    return values


def parse_settings_form(current: CoachSettings, values: Mapping[str, str]) -> CoachSettings:
    """New settings from the form's text fields (other settings kept from ``current``).

    Raises ValueError with one line naming the field, e.g. ``Quick hint length (s): Input should be greater
    than 0``.
    """
    updates: dict[str, Any] = {}
    for name, raw in values.items():
        updates[name] = field_to_phrases(raw) if name in PHRASE_FIELDS else raw.strip()
    try:
        # model_validate, not model_copy: model_copy(update=...) would skip validation.
        return CoachSettings.model_validate({**current.model_dump(), **updates})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        raise ValueError(f"{FORM_FIELDS.get(name, name or 'settings')}: {error['msg']}") from exc


class SettingsScreen(ModalScreen[CoachSettings | None]):
    """Edit phrases, hint lengths and windows. Save validates, then calls ``on_save``.

    ``on_save(new)`` applies and persists the settings and returns an error line, or None on success; the
    screen closes (dismissed with the new settings) only on success, otherwise the error is shown inline.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, current: CoachSettings, on_save: Callable[[CoachSettings], str | None]) -> None:
        super().__init__()
        self.current = current
        self.on_save = on_save

    def compose(self) -> ComposeResult:
        values = form_values(self.current)
        with Vertical(id="settings-dialog", classes="dialog"):
            yield Label("Settings — phrases are comma-separated; Enter or Ctrl+S saves", classes="dialog-title")
            for name, label in FORM_FIELDS.items():
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(values[name], id=f"field-{name}", compact=True)
            yield Static("", id="settings-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def values(self) -> dict[str, str]:
        return {name: self.query_one(f"#field-{name}", Input).value for name in FORM_FIELDS}

    @property
    def error(self) -> str:
        """The error line currently shown ("" when none)."""
        return str(self.query_one("#settings-error", Static).content)

    def action_save(self) -> None:
        try:
            new = parse_settings_form(self.current, self.values())
        except ValueError as exc:
            self._show_error(str(exc))
            return
        problem = self.on_save(new)
        if problem:
            self._show_error(problem)
            return
        self.dismiss(new)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def _show_error(self, text: str) -> None:
        # One line: the dialog has room for one, and the first problem is the one to fix first.
        self.query_one("#settings-error", Static).update(text.splitlines()[0] if text else "")


class HelpScreen(ModalScreen[None]):
    """Keys, the current phrases and what the two hint tiers mean."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close"),
    ]

    def __init__(self, coach: CoachSettings) -> None:
        super().__init__()
        self.coach = coach

    def compose(self) -> ComposeResult:
        # Scrollable: on a small terminal the help is taller than the screen.
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Label("voicecoach — help (Esc closes)", classes="dialog-title")
            yield Static(help_text(self.coach), id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)


def help_text(coach: CoachSettings) -> Text:
    def phrases(items: list[str]) -> str:
        return ", ".join(f'"{p}"' for p in items) or "(none)"

    text = Text()
    text.append("Keys\n", "bold")
    for key, meaning in help_rows("tui"):
        text.append(f"  {key:<10}", "bold cyan")
        text.append(f"{meaning}\n")
    text.append("\nSay it instead\n", "bold")
    text.append(f"  quick hint      {phrases(coach.quick_phrases)}\n")
    text.append(f"  full guidance   {phrases(coach.full_phrases)}\n")
    text.append(f"  interrupt       {phrases(coach.interrupt_phrases)}\n")
    text.append("\nTiers\n", "bold")
    text.append(
        f"  quick hint      one or two sentences you can use right now, from the last {coach.quick_window} "
        f"messages, at most ~{coach.quick_seconds:g} s of speech\n"
    )
    text.append(
        f"  full guidance   the key point, how to proceed and one pitfall, from the last {coach.full_window} "
        f"messages, at most ~{coach.full_seconds:g} s of speech\n"
    )
    text.append("\nThe coach stays silent until asked; its own words never trigger it.", "dim")
    return text
