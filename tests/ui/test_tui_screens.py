"""The settings and help screens: form parsing, apply + persist, inline errors."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest
from textual.widgets import Input
from tui_fakes import SessionFactory, wait_until

from voicecoach.coach.settings import CoachSettings
from voicecoach.config import Settings
from voicecoach.ui.tui import CoachApp
from voicecoach.ui.tui_screens import (
    HelpScreen,
    SettingsScreen,
    field_to_phrases,
    form_values,
    parse_settings_form,
    phrases_to_field,
)


def test_phrase_fields_round_trip_keeping_commas_in_phrases() -> None:
    # One phrase per line (issue 15: a comma-separated field turned "thanks, got it" into "thanks got it").
    field = phrases_to_field(["got it", "thanks, got it", "stop"])
    assert field == "got it\nthanks, got it\nstop"
    assert field_to_phrases(field) == ["got it", "thanks, got it", "stop"]
    assert field_to_phrases(" a, b \n\n  c  d \n") == ["a, b", "c  d"]
    assert field_to_phrases("") == []


def test_parse_form_validates_and_keeps_other_settings() -> None:
    current = CoachSettings(cooldown_seconds=7.0)
    values = form_values(current)
    assert values["quick_seconds"] == "10" and values["full_window"] == "10"
    new = parse_settings_form(current, {**values, "quick_phrases": "psst\nhelp, now", "full_window": "12"})
    assert new.quick_phrases == ["psst", "help, now"] and new.full_window == 12 and new.cooldown_seconds == 7.0
    with pytest.raises(ValueError, match=r"^Quick hint length \(s\): Input should be greater than 0$"):
        parse_settings_form(current, {**values, "quick_seconds": "0"})
    with pytest.raises(ValueError, match=r"^Full guidance window \(messages\): Input should be a valid integer"):
        parse_settings_form(current, {**values, "full_window": "2.5"})


async def test_settings_edit_applies_and_persists_keeping_other_keys(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('api_key = "sk-keep"\nvoice = "verse"\n[coach]\ncooldown_seconds = 2.0\n')
    factory = SessionFactory()
    app = CoachApp(Settings(), factory, config, linger_s=0)
    async with app.run_test(size=(110, 30)) as pilot:
        await wait_until(pilot, lambda: factory.run is not None and app.run_active)
        session = factory.run
        assert session is not None
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        edits = {
            "quick_phrases": "help me out\npsst",
            "full_phrases": "walk me through it",
            "interrupt_phrases": "enough\nstop",
            "quick_seconds": "6",
            "full_seconds": "45.5",
            "quick_window": "4",
            "full_window": "15",
        }
        for name, value in edits.items():
            screen.set_value(name, value)
        await pilot.press("h")  # typed into the focused field, not a quick hint
        assert session.intents.empty()
        screen.set_value("quick_phrases", edits["quick_phrases"])
        await pilot.click("#save")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))

    expected = CoachSettings(
        quick_phrases=["help me out", "psst"],
        full_phrases=["walk me through it"],
        interrupt_phrases=["enough", "stop"],
        quick_seconds=6,
        full_seconds=45.5,
        quick_window=4,
        full_window=15,
        cooldown_seconds=3.0,  # from the running settings (the file's 2.0 was never loaded here)
    )
    assert session.applied == [expected]
    assert app.settings.coach == expected
    doc = tomllib.loads(config.read_text())
    assert doc["api_key"] == "sk-keep" and doc["voice"] == "verse"
    # Only the edited values are written: the file's cooldown_seconds (not on the screen) stays as it was.
    assert CoachSettings.model_validate(doc["coach"]) == expected.model_copy(update={"cooldown_seconds": 2.0})
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


async def test_invalid_value_and_rejected_phrases_show_inline_and_change_nothing(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    factory = SessionFactory(lambda s: setattr(s, "reject_settings", "quick phrase 'x' is also a full phrase\nmore"))
    app = CoachApp(Settings(), factory, config, linger_s=0)
    async with app.run_test(size=(110, 30)) as pilot:
        await wait_until(pilot, lambda: app.run_active)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        assert isinstance(screen, SettingsScreen)

        field = screen.query_one("#field-full_seconds", Input)
        field.value = "abc"
        field.focus()
        await pilot.press("enter")  # Enter in a field saves
        await wait_until(pilot, lambda: screen.error.startswith("Full guidance length (s): Input should be a valid"))

        field.value = "20"
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.error == "not applied: quick phrase 'x' is also a full phrase")
        assert isinstance(app.screen, SettingsScreen)

        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
    assert factory.run is not None and factory.run.applied == []
    assert not config.exists()
    assert app.settings.coach == CoachSettings()


async def test_unsavable_config_is_reported_after_applying(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    factory = SessionFactory()
    app = CoachApp(Settings(), factory, blocker / "config.toml", linger_s=0)
    async with app.run_test(size=(110, 30)) as pilot:
        await wait_until(pilot, lambda: app.run_active)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        screen.query_one("#field-quick_window", Input).value = "5"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: screen.error.startswith("applied to this session, but not saved: config file"))
    assert factory.run is not None and [s.quick_window for s in factory.run.applied] == [5]


async def test_help_lists_keys_phrases_and_tiers(tmp_path: Path) -> None:
    factory = SessionFactory()
    settings = Settings(coach=CoachSettings(quick_phrases=["psst"], quick_window=4))
    app = CoachApp(settings, factory, tmp_path / "c.toml", linger_s=0)
    async with app.run_test(size=(110, 34)) as pilot:
        await wait_until(pilot, lambda: app.run_active)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = str(app.screen.query_one("#help-text").render())
        for needle in ('"psst"', '"give me guidance"', '"thanks, got it"', "last 4 messages", "i / space", "mute"):
            assert needle in text
        await pilot.press("m")  # main-screen keys are off under a dialog
        assert factory.run is not None and factory.run.intents.empty()
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen))
