"""The ``[hotkeys]`` table through the real settings loader: file, environment, normal form, and one-line errors
naming the key and its source (exit 2 through the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from voicecoach.config import load_settings
from voicecoach.errors import ConfigError
from voicecoach.hotkeys.keys import Binding


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_nothing_is_bound_by_default() -> None:
    hotkeys = load_settings(None, environ={}).hotkeys
    assert hotkeys.bindings() == {}
    assert hotkeys.enabled and hotkeys.mechanism == "auto"


def test_a_table_in_the_file_is_read_and_normalised(tmp_path: Path) -> None:
    path = config(tmp_path, '[hotkeys]\nhint = "Ctrl+Alt+H"\nstop = "<alt>+<ctrl>+s"\nmechanism = "pynput"\n')
    hotkeys = load_settings(path, environ={}).hotkeys
    assert (hotkeys.hint, hotkeys.stop, hotkeys.mechanism) == ("<ctrl>+<alt>+h", "<ctrl>+<alt>+s", "pynput")
    assert hotkeys.bindings() == {"hint": Binding(("ctrl", "alt"), "h"), "stop": Binding(("ctrl", "alt"), "s")}


def test_the_environment_sets_one_key_of_the_table(tmp_path: Path) -> None:
    path = config(tmp_path, '[hotkeys]\nhint = "<ctrl>+<alt>+h"\n')
    hotkeys = load_settings(path, environ={"VOICECOACH_HOTKEYS__GUIDE": "<ctrl>+<alt>+g"}).hotkeys
    assert (hotkeys.hint, hotkeys.guide) == ("<ctrl>+<alt>+h", "<ctrl>+<alt>+g")


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('hint = "<ctlr>+<alt>+h"', ["invalid hotkeys.hint from config file", "did you mean <ctrl>?"]),
        ('hint = ""', ["invalid hotkeys.hint from config file", "is empty"]),
        ('stop = "<ctrl>+<ctrl>+s"', ["invalid hotkeys.stop from config file", "<ctrl> is given twice"]),
        ("hint = 5", ["invalid hotkeys.hint from config file", "string"]),
        ('hint = "<ctrl>+<alt>+h"\nstop = "ctrl+alt+H"', ["hotkeys.hint and hotkeys.stop are both <ctrl>+<alt>+h"]),
        ('mechanism = "x11"', ["invalid hotkeys.mechanism from config file", "'auto', 'pynput', 'portal' or 'off'"]),
        ('hnit = "<ctrl>+<alt>+h"', ["unknown setting hotkeys.hnit", "did you mean hotkeys.hint?"]),
    ],
)
def test_a_bad_table_is_one_line_naming_the_key_and_the_file(tmp_path: Path, table: str, words: list[str]) -> None:
    path = config(tmp_path, f"[hotkeys]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    for word in words:
        assert word in message, message


def test_a_bad_variable_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"invalid hotkeys.mute from environment variable VOICECOACH_HOTKEYS__MUTE"):
        load_settings(None, environ={"VOICECOACH_HOTKEYS__MUTE": "m"})


def test_the_cli_exits_2_with_one_line(tmp_path: Path) -> None:
    path = config(tmp_path, '[hotkeys]\nhint = "<ctrl>+<altt>+h"\n')
    done = subprocess.run(
        [sys.executable, "-m", "voicecoach", "run", "--plain", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("voicecoach: error: invalid hotkeys.hint from config file"), lines[0]
    assert str(path) in lines[0] and "did you mean <alt>?" in lines[0]
