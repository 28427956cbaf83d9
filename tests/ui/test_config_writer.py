"""save_coach_settings: only the [coach] table changes; the file is created 0600 if missing."""

from __future__ import annotations

import errno
import os
import stat
import tomllib
from pathlib import Path

import pytest

from voicecoach.coach.settings import CoachSettings
from voicecoach.config import load_settings
from voicecoach.config_writer import save_coach_settings
from voicecoach.errors import ConfigError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_file_and_parent_dirs_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "config.toml"
    save_coach_settings(path, CoachSettings(quick_phrases=["help me"], quick_seconds=8))
    assert tomllib.loads(path.read_text()) == {"coach": {"quick_phrases": ["help me"], "quick_seconds": 8.0}}
    assert mode(path) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_keeps_other_keys_and_replaces_only_the_coach_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'api_key = "sk-secret"\nmodel = "gpt-realtime"\n\n[coach]\nquick_seconds = 5.0\ncooldown_seconds = 1.0\n\n'
        "[extra]\nnested = { a = 1 }\n"
    )
    path.chmod(0o644)
    save_coach_settings(path, CoachSettings(full_window=12, interrupt_phrases=["enough"]))
    doc = tomllib.loads(path.read_text())
    assert doc == {
        "api_key": "sk-secret",
        "model": "gpt-realtime",
        # The whole table is replaced: quick_seconds/cooldown_seconds went back to their defaults.
        "coach": {"interrupt_phrases": ["enough"], "full_window": 12},
        "extra": {"nested": {"a": 1}},
    }
    assert mode(path) == 0o600  # it holds an api_key


def test_all_defaults_drop_the_table_and_round_trip_through_load_settings(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('voice = "verse"\n[coach]\nquick_window = 4\n')
    save_coach_settings(path, CoachSettings())
    assert tomllib.loads(path.read_text()) == {"voice": "verse"}
    custom = CoachSettings(quick_phrases=["psst"], full_seconds=42.5, window_mode="references")
    save_coach_settings(path, custom)
    assert load_settings(path).coach == custom


def test_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "voicecoach.toml"
    real.parent.mkdir()
    real.write_text('model = "m"\n')
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    save_coach_settings(link, CoachSettings(quick_window=2))
    assert link.is_symlink()
    assert tomllib.loads(real.read_text()) == {"model": "m", "coach": {"quick_window": 2}}


def test_invalid_toml_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        save_coach_settings(path, CoachSettings(quick_window=2))
    assert path.read_text() == "model = \n"


def test_a_path_under_a_file_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot be read: Not a directory"):
        save_coach_settings(blocker / "config.toml", CoachSettings())


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text('model = "m"\n')

    def full_disk(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(ConfigError, match=r"^cannot write config file .*config.toml: No space left on device$"):
        save_coach_settings(path, CoachSettings(quick_window=2))
    assert path.read_text() == 'model = "m"\n'
    assert list(tmp_path.iterdir()) == [path]
