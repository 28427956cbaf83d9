"""The echo canceller's settings on the command line: ``--echo-cancellation``, ``--no-noise-suppression`` and
``--no-high-pass-filter`` reach Settings as `voicecoach run` builds them, and bad values are one line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from voicecoach import cli
from voicecoach.cli_parser import RUN_SETTINGS, build_parser, flag_names_of
from voicecoach.config import Settings, load_settings


def settings_from(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """What ``_cmd_run`` does with ``voicecoach run ARGV``: every RUN_SETTINGS flag over the file and the env."""
    args = build_parser().parse_args(["run", *argv])
    flags = {name: getattr(args, name) for name in RUN_SETTINGS}
    return load_settings(None, flags, flag_names=flag_names_of(build_parser(), "run"), environ=environ or {})


def test_defaults_are_auto_with_both_filters() -> None:
    settings = settings_from([])
    assert (settings.echo_cancellation, settings.noise_suppression, settings.high_pass_filter) == ("auto", True, True)


@pytest.mark.parametrize("value", ["auto", "on", "off"])
def test_echo_cancellation_flag(value: str) -> None:
    assert settings_from(["--echo-cancellation", value]).echo_cancellation == value


def test_the_no_flags_turn_each_filter_off_alone() -> None:
    settings = settings_from(["--no-noise-suppression"])
    assert (settings.noise_suppression, settings.high_pass_filter) == (False, True)
    settings = settings_from(["--no-high-pass-filter"])
    assert (settings.noise_suppression, settings.high_pass_filter) == (True, False)


def test_the_environment_is_used_unless_a_flag_says_otherwise() -> None:
    env = {"VOICECOACH_ECHO_CANCELLATION": "off", "VOICECOACH_NOISE_SUPPRESSION": "false"}
    settings = settings_from([], env)
    assert (settings.echo_cancellation, settings.noise_suppression) == ("off", False)
    assert settings_from(["--echo-cancellation", "on"], env).echo_cancellation == "on"


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("voicecoach: error: ") and "Traceback" not in err, err
    return lines[0]


def test_a_bad_flag_value_is_one_line_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--echo-cancellation", "maybe"]) == 2
    line = one_error_line(capsys)
    assert "--echo-cancellation" in line and "'maybe'" in line and "'auto', 'on', 'off'" in line


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [("VOICECOACH_ECHO_CANCELLATION", "maybe", "'auto', 'on' or 'off'"), ("VOICECOACH_HIGH_PASS_FILTER", "x", "bool")],
)
def test_a_bad_variable_is_one_config_error_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(name, value)
    assert cli.main(["run", "--plain"]) == 2  # refused before any device or server is touched
    line = one_error_line(capsys)
    assert name in line and allowed in line
