"""The settings screen keeps the user's config file intact (issue 15): a save changes only the changed values' lines.

Each test loads a hand-written file (comments, odd key order, blank lines, tables the screen does not know, a
``[profiles.x]`` table, an api_key) with the real loader, makes one change through the screen (Pilot), and
compares the files line by line.
"""

from __future__ import annotations

import difflib
import stat
import tomllib
from pathlib import Path

import pytest
from textual.widgets import TextArea
from tui_fakes import SessionFactory, wait_until

from voicecoach.coach.settings import CoachSettings
from voicecoach.config import load_settings
from voicecoach.config_writer import save_coach_settings
from voicecoach.errors import ConfigError
from voicecoach.ui.tui import CoachApp
from voicecoach.ui.tui_screens import SettingsScreen

CONFIG = """\
# voicecoach — my settings; keep these notes
api_key = "sk-test-keep-me"   # secret: the file must stay 0600
voice = "verse"

[token_server]
# the port my laptop's firewall allows
port = 8799

[coach]
# odd order on purpose: phrases last, windows first
full_window = 12
quick_window = 4  # short window


interrupt_phrases = ["thanks, got it", "stop"]  # a comma inside a phrase
quick_phrases = ["psst"]

[profiles.x]
description = "mine, terse"
full_seconds = 20.0  # x is terse
"""

Diff = list[tuple[str, list[str], list[str]]]


def changes(before: str, after: str) -> Diff:
    """The lines that differ: (replace/insert/delete, old lines, new lines) for each changed run of lines."""
    a, b = before.splitlines(), after.splitlines()
    ops = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    return [(tag, a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


async def save_through_screen(path: Path, edits: dict[str, str], profile: str | None = None) -> CoachApp:
    """Load ``path`` as the CLI does, open the settings screen, make ``edits`` and save with Ctrl+S."""
    settings = load_settings(path, {"profile": profile} if profile else None)
    factory = SessionFactory()
    app = CoachApp(settings, factory, path, linger_s=0)
    async with app.run_test(size=(110, 30), notifications=True) as pilot:
        await wait_until(pilot, lambda: app.run_active)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        for name, value in edits.items():
            screen.set_value(name, value)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
    assert factory.run is not None and len(factory.run.applied) == 1  # applied to the session too
    return app


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG, encoding="utf-8")
    path.chmod(0o600)
    return path


async def test_one_change_in_coach_changes_exactly_its_line(config: Path) -> None:
    app = await save_through_screen(config, {"quick_window": "6"})
    after = config.read_text(encoding="utf-8")
    assert changes(CONFIG, after) == [
        ("replace", ["quick_window = 4  # short window"], ["quick_window = 6  # short window"]),
    ]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert app.settings.coach.quick_window == 6
    assert load_settings(config).coach.interrupt_phrases == ["thanks, got it", "stop"]


async def test_an_active_profile_gets_the_change_in_its_own_table(config: Path) -> None:
    # x sets full_seconds (its line changes); quick_seconds is set nowhere (appended to [profiles.x]); [coach]
    # sets quick_window and beats every profile, so that change goes to [coach] where it takes effect.
    app = await save_through_screen(
        config, {"full_seconds": "25", "quick_seconds": "7", "quick_window": "5"}, profile="x"
    )
    after = config.read_text(encoding="utf-8")
    assert changes(CONFIG, after) == [
        ("replace", ["quick_window = 4  # short window"], ["quick_window = 5  # short window"]),
        (
            "replace",
            ["full_seconds = 20.0  # x is terse"],
            ["full_seconds = 25.0  # x is terse", "quick_seconds = 7.0"],
        ),
    ]
    again = load_settings(config, {"profile": "x"})
    assert (again.coach.full_seconds, again.coach.quick_seconds, again.coach.quick_window) == (25.0, 7.0, 5)
    assert load_settings(config).coach.full_seconds == 30.0  # without the profile: untouched
    assert app.settings.profile == "x"


async def test_a_built_in_profile_gets_a_new_table_at_the_end(config: Path) -> None:
    await save_through_screen(config, {"full_window": "8", "quick_seconds": "6"}, profile="interview")
    after = config.read_text(encoding="utf-8")
    # full_window is in [coach] (which beats profiles); quick_seconds is new, in [profiles.interview].
    assert changes(CONFIG, after) == [
        ("replace", ["full_window = 12"], ["full_window = 8"]),
        ("insert", [], ["", "[profiles.interview]", "quick_seconds = 6.0"]),
    ]
    assert tomllib.loads(after)["profiles"]["interview"] == {"quick_seconds": 6.0}
    assert load_settings(config, {"profile": "interview"}).coach.quick_seconds == 6.0


async def test_a_phrase_typed_with_a_comma_is_saved_with_it(config: Path) -> None:
    settings = load_settings(config)
    factory = SessionFactory()
    app = CoachApp(settings, factory, config, linger_s=0)
    async with app.run_test(size=(110, 30)) as pilot:
        await wait_until(pilot, lambda: app.run_active)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        area = app.screen.query_one("#field-interrupt_phrases", TextArea)
        assert area.text == "thanks, got it\nstop"  # one phrase per line, as in the file
        area.focus()
        area.move_cursor(area.document.end)
        await pilot.press("enter", *"ok", "comma", "space", *"enough")  # typed, as a user would
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
    expected = ["thanks, got it", "stop", "ok, enough"]
    assert factory.run is not None and factory.run.applied[-1].interrupt_phrases == expected
    after = config.read_text(encoding="utf-8")
    assert changes(CONFIG, after) == [
        (
            "replace",
            ['interrupt_phrases = ["thanks, got it", "stop"]  # a comma inside a phrase'],
            ['interrupt_phrases = ["thanks, got it", "stop", "ok, enough"]  # a comma inside a phrase'],
        )
    ]
    assert load_settings(config).coach.interrupt_phrases == expected


async def test_saving_unchanged_values_leaves_the_file_byte_for_byte(config: Path) -> None:
    before = config.read_bytes()
    await save_through_screen(config, {})
    assert config.read_bytes() == before


def test_unknown_tables_inline_tables_and_crlf_survive_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    original = (
        '# notes\r\nmodel = "m"\r\n\r\n[my.own.stuff]  # not a voicecoach table\r\nanswer = 42\r\n\r\n'
        "[profiles]\r\nx = { quick_window = 2 }  # inline\r\n"
    )
    path.write_text(original, encoding="utf-8", newline="")
    changed = save_coach_settings(path, CoachSettings(quick_window=5), before=CoachSettings(), profile="x")
    assert changed == {"profiles.x": ["quick_window"]}
    after = path.read_bytes().decode("utf-8")
    assert after == original.replace("quick_window = 2", "quick_window = 5")


def test_a_file_tomllib_rejects_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[coach]\nquick_window = 1\n[coach]\nfull_window = 2\n")  # a table defined twice
    with pytest.raises(ConfigError, match="not valid TOML"):
        save_coach_settings(path, CoachSettings(quick_window=5), before=CoachSettings())
    assert path.read_text() == "[coach]\nquick_window = 1\n[coach]\nfull_window = 2\n"


def test_with_a_profile_a_default_value_is_written_not_dropped(tmp_path: Path) -> None:
    # [coach] sets quick_window 4 and profile x sets 2: setting it back to the default 3 under x must say 3 in
    # [coach]; dropping the key would let x's 2 through on the next start.
    path = tmp_path / "config.toml"
    path.write_text("[coach]\nquick_window = 4\n\n[profiles.x]\nquick_window = 2\n")
    before = load_settings(path, {"profile": "x"}).coach
    assert before.quick_window == 4
    changed = save_coach_settings(path, before.model_copy(update={"quick_window": 3}), before=before, profile="x")
    assert changed == {"coach": ["quick_window"]}
    assert load_settings(path, {"profile": "x"}).coach.quick_window == 3
