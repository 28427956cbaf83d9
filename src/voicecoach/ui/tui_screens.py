"""The settings (``s``), profile (``p``) and help (``?``) screens of the terminal UI."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from ..coach.settings import CoachSettings
from ..profiles import Profile
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
NO_PROFILE = "no profile"  # how the profile list names running on the base settings alone


def phrases_to_field(phrases: list[str]) -> str:
    """One phrase per line: a phrase may hold any punctuation ("thanks, got it"), and no phrase holds a newline."""
    return "\n".join(phrases)


def field_to_phrases(value: str) -> list[str]:
    """The phrases of a field: one per line, blank lines skipped, spaces at either end dropped."""
    return [line.strip() for line in value.splitlines() if line.strip()]


def form_values(settings: CoachSettings) -> dict[str, str]:
    """The text each form field starts with."""
    values: dict[str, str] = {}
    for name in FORM_FIELDS:
        value = getattr(settings, name)
        values[name] = phrases_to_field(value) if name in PHRASE_FIELDS else f"{value:g}"
    return values


def parse_settings_form(current: CoachSettings, values: Mapping[str, str]) -> CoachSettings:
    """New settings from the form's text fields (other settings kept from ``current``).

    A field whose text is still what :func:`form_values` showed keeps ``current``'s value exactly, so that saving
    one change never rewrites another value (a phrase with spaces at its end, 10.25 s shown as "10.25").
    Raises ValueError with one line naming the field, e.g. ``Quick hint length (s): Input should be greater
    than 0``.
    """
    shown = form_values(current)
    updates: dict[str, Any] = {}
    for name, raw in values.items():
        if raw == shown.get(name):
            continue
        updates[name] = field_to_phrases(raw) if name in PHRASE_FIELDS else raw.strip()
    try:
        # model_validate, not model_copy: model_copy(update=...) would skip validation.
        return CoachSettings.model_validate({**current.model_dump(), **updates})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        raise ValueError(f"{FORM_FIELDS.get(name, name or 'settings')}: {error['msg']}") from exc


def editing_line(profile: str | None, config_path: Path | None) -> str:
    """What the settings screen edits and where a save goes (shown on the screen)."""
    where = f" in {config_path}" if config_path is not None else ""
    if profile is None:
        return f"Editing the base settings (no profile): saved to [coach]{where}"
    return f"Editing profile {profile!r}: saved to [profiles.{profile}]{where}"


class SettingsScreen(ModalScreen[CoachSettings | None]):
    """Edit phrases, hint lengths and windows of what is in effect now. Save validates, then calls ``on_save``.

    With a profile active the screen edits that profile: ``on_save`` writes the changes to its
    ``[profiles.NAME]`` table (a key the file's ``[coach]`` also sets stays there, since ``[coach]`` beats
    profiles). ``on_save(new)`` applies and persists the settings and returns an error line, or None on success;
    the screen closes (dismissed with the new settings) only on success, otherwise the error is shown inline.
    Phrases are edited one per line in a text area, so a phrase keeps its commas.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]
    # Here rather than in tui.tcss: the rows of phrases are this screen's own (tui.tcss styles the rest).
    DEFAULT_CSS = """
    SettingsScreen .phrase-row {
        height: 3;
        margin-bottom: 1;
    }
    SettingsScreen .phrase-row TextArea {
        width: 1fr;
        height: 3;
    }
    SettingsScreen #settings-target {
        height: auto;
    }
    SettingsScreen .form-unit {
        width: auto;
    }
    SettingsScreen .dim-note {
        height: auto;
        color: $text-muted;
        margin-bottom: 1;
    }
    """

    def __init__(
        self,
        current: CoachSettings,
        on_save: Callable[[CoachSettings], str | None],
        *,
        profile: str | None = None,
        config_path: Path | None = None,
        on_switch_profile: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.current = current
        self.on_save = on_save
        self.profile = profile
        self.config_path = config_path
        self.on_switch_profile = on_switch_profile

    def compose(self) -> ComposeResult:
        values = form_values(self.current)
        # Scrollable: three phrase areas and four numbers are taller than an 80x24 terminal.
        with VerticalScroll(id="settings-dialog", classes="dialog"):
            yield Label("Settings — one phrase per line; Ctrl+S saves, Esc cancels", classes="dialog-title")
            yield Static(editing_line(self.profile, self.config_path), id="settings-target", markup=False)
            yield Static(
                (
                    "A value that the file's [coach] also sets is saved there ([coach] beats every profile). "
                    if self.profile is not None
                    else ""
                )
                + "Profile… (or p on the main screen) switches profile for this session.",
                id="settings-target-note",
                classes="dim-note",
                markup=False,
            )
            for name in PHRASE_FIELDS:
                with Horizontal(classes="phrase-row"):
                    yield Label(FORM_FIELDS[name], classes="form-label")
                    yield TextArea(values[name], id=f"field-{name}", compact=True, soft_wrap=False)
            # A tier's length and window share a row: the dialog must fit a 30-row terminal without scrolling.
            for tier, title in (("quick", "Quick hint"), ("full", "Full guidance")):
                with Horizontal(classes="form-row"):
                    yield Label(title, classes="form-label")
                    yield Label("length (s) ", classes="form-unit")
                    yield Input(values[f"{tier}_seconds"], id=f"field-{tier}_seconds", compact=True)
                    yield Label("  window (messages) ", classes="form-unit")
                    yield Input(values[f"{tier}_window"], id=f"field-{tier}_window", compact=True)
            yield Static("", id="settings-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                if self.on_switch_profile is not None:
                    yield Button("Profile…", id="switch-profile", compact=True)
                yield Button("Save", variant="primary", id="save", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        # The first phrase field, not the scrolling dialog: typing goes straight into a field.
        self.query_one(f"#field-{PHRASE_FIELDS[0]}").focus()

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in FORM_FIELDS:
            widget = self.query_one(f"#field-{name}")
            out[name] = widget.text if isinstance(widget, TextArea) else self.query_one(f"#field-{name}", Input).value
        return out

    def set_value(self, name: str, text: str) -> None:
        """Put ``text`` into field ``name`` (as typing would; for tests and scripts)."""
        widget = self.query_one(f"#field-{name}")
        if isinstance(widget, TextArea):
            widget.load_text(text)
        else:
            self.query_one(f"#field-{name}", Input).value = text

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
        elif event.button.id == "switch-profile":
            self.switch_profile()
        else:
            self.action_cancel()

    def switch_profile(self) -> None:
        """Close, then let the user pick a profile (refused while there are unsaved changes: they would be lost)."""
        if self.values() != form_values(self.current):
            self._show_error("save or cancel your changes before switching profile")
            return
        switch = self.on_switch_profile
        self.dismiss(None)
        if switch is not None:
            switch()

    def _show_error(self, text: str) -> None:
        # One line: the dialog has room for one, and the first problem is the one to fix first.
        self.query_one("#settings-error", Static).update(text.splitlines()[0] if text else "")


@dataclass(frozen=True)
class ProfileChoice:
    """What the profile screen picked: a profile's name, or None for no profile (the base settings alone)."""

    name: str | None


class ProfileScreen(ModalScreen[ProfileChoice | None]):
    """Pick the profile the next hints use, from the built-in ones and the config file's ``[profiles.NAME]``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,p,q", "cancel", "Cancel"),
    ]
    DEFAULT_CSS = """
    ProfileScreen {
        align: center middle;
    }
    ProfileScreen OptionList {
        height: auto;
        max-height: 20;
    }
    """

    def __init__(self, profiles: Mapping[str, Profile], active: str | None) -> None:
        super().__init__()
        self.profiles = dict(profiles)
        self.active = active

    def compose(self) -> ComposeResult:
        options = [Option(self._row(None, "the [coach] settings alone"), id="")]
        options += [Option(self._row(name, p.description), id=f"profile-{name}") for name, p in self.profiles.items()]
        with Vertical(id="profile-dialog", classes="dialog"):
            yield Label("Profile — Enter switches (the next hint uses it), Esc cancels", classes="dialog-title")
            yield OptionList(*options, id="profile-list", compact=True)

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        names = [None, *self.profiles]
        option_list.highlighted = names.index(self.active) if self.active in names else 0
        option_list.focus()

    def _row(self, name: str | None, description: str) -> Text:
        mark = "● " if name == self.active else "  "
        row = Text.assemble((mark, "bold green"), (name or NO_PROFILE, "bold"))
        if description:
            row.append(f"  {description}", "dim")
        return row

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option_id = event.option.id or ""
        self.dismiss(ProfileChoice(option_id.removeprefix("profile-") or None))

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Keys, the current phrases and what the two hint tiers mean."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close"),
    ]

    def __init__(self, coach: CoachSettings, profile: str | None = None) -> None:
        super().__init__()
        self.coach = coach
        self.profile = profile

    def compose(self) -> ComposeResult:
        # Scrollable: on a small terminal the help is taller than the screen.
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Label("voicecoach — help (Esc closes)", classes="dialog-title")
            yield Static(help_text(self.coach, self.profile), id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)


def help_text(coach: CoachSettings, profile: str | None = None) -> Text:
    def phrases(items: list[str]) -> str:
        return ", ".join(f'"{p}"' for p in items) or "(none)"

    text = Text()
    text.append("Keys\n", "bold")
    for key, meaning in help_rows("tui"):
        text.append(f"  {key:<10}", "bold cyan")
        text.append(f"{meaning}\n")
    text.append("\nProfile\n", "bold")
    text.append(f"  {profile or NO_PROFILE}   (p picks another; the next hint uses it)\n")
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
