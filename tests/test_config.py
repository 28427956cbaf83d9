"""Config precedence (defaults < TOML < environment < flags) and one-line errors naming the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicecoach.config import load_settings
from voicecoach.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("VOICECOACH_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""))
    assert s.model == "gpt-realtime-1.5"
    assert s.voice == "alloy"
    assert s.base_url == "https://api.openai.com/v1"
    assert s.api_key is None
    assert s.ice_servers == []
    assert s.coach.quick_window == 3 and s.coach.full_window == 10


def test_precedence_file_env_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'model = "m-file"\nvoice = "v-file"\ninstructions = "i-file"\n')
    monkeypatch.setenv("VOICECOACH_VOICE", "v-env")
    monkeypatch.setenv("VOICECOACH_INSTRUCTIONS", "i-env")
    s = load_settings(path, {"instructions": "i-flag", "model": None})
    assert s.model == "m-file"  # only the file sets it (a None flag means "not given")
    assert s.voice == "v-env"  # env beats file
    assert s.instructions == "i-flag"  # flag beats env


def test_openai_variables_and_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefgh")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    s = load_settings(write(tmp_path, ""))
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-test-abcdefgh"
    assert "sk-test" not in repr(s) and "sk-test" not in str(s.api_key)
    assert s.base_url == "http://127.0.0.1:9/v1"
    monkeypatch.setenv("VOICECOACH_API_KEY", "sk-voicecoach-wins")
    assert load_settings(write(tmp_path, "")).api_key.get_secret_value() == "sk-voicecoach-wins"  # type: ignore[union-attr]


def test_ice_hosts_comma_separated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICECOACH_ICE_HOSTS", "127.0.0.1, ::1")
    assert load_settings(write(tmp_path, "")).ice_hosts == ["127.0.0.1", "::1"]
    assert load_settings(write(tmp_path, ""), {"ice_hosts": ["10.0.0.1"]}).ice_hosts == ["10.0.0.1"]


def test_nested_coach_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[coach]\nquick_phrases = ["nice one"]\nquick_seconds = 5\n')
    monkeypatch.setenv("VOICECOACH_COACH__FULL_WINDOW", "7")
    s = load_settings(path)
    assert s.coach.quick_phrases == ["nice one"]
    assert s.coach.quick_seconds == 5
    assert s.coach.full_window == 7


@pytest.mark.parametrize(
    ("toml", "env", "flags", "expected"),
    [
        ('noise_reduction = "loud"\n', {}, {}, "invalid noise_reduction from config file"),
        (
            "",
            {"VOICECOACH_VAD_THRESHOLD": "7"},
            {},
            "invalid vad_threshold from environment variable VOICECOACH_VAD_THRESHOLD",
        ),
        ("", {}, {"duration": -1.0}, "invalid duration from --duration"),
        ("", {}, {"base_url": "ftp://x"}, "invalid base_url from --base-url"),
        ("bogus = 1\n", {}, {}, "unknown setting bogus in config file"),
        ("[coach]\nquick_window = 0\n", {}, {}, "invalid coach.quick_window from config file"),
        ("session_max_seconds = 60\nrollover_margin_seconds = 90\n", {}, {}, "invalid settings: rollover_margin"),
    ],
)
def test_errors_name_source_field_and_allowed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    toml: str,
    env: dict[str, str],
    flags: dict[str, object],
    expected: str,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, toml), flags)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_error_never_echoes_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-supersecretvalue")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "http_timeout = -3\n"))
    assert "sk-supersecret" not in str(info.value)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "model = \n"))


def test_default_file_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nowhere"))
    assert load_settings(None).model == "gpt-realtime-1.5"
    (tmp_path / "nowhere" / "voicecoach").mkdir(parents=True)
    (tmp_path / "nowhere" / "voicecoach" / "config.toml").write_text('voice = "cedar"\n')
    assert load_settings(None).voice == "cedar"


# --- every source, every level: one line naming the source, the dotted key and what is allowed (issue 10) ---


def fails(path: Path, env: dict[str, str] | None = None, flags: dict[str, object] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, flags, environ=env or {})
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    return message


def test_non_utf8_file_names_the_file_and_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'model = "caf\xe9"\n')
    assert fails(path) == f"config file {path} is not UTF-8 text (byte 0xe9 at offset 12); save it as UTF-8"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("coach = 3\n", "invalid coach from config file {path}: must be a table of settings"),
        ("[model]\nx = 1\n", "invalid model from config file {path}: Input should be a valid string"),
        (
            "[coach]\nquick_phrase = ['a']\n",
            "unknown setting coach.quick_phrase in config file {path}; did you mean coach.quick_phrases?",
        ),
        (
            "quick_seconds = 5\n",
            "unknown setting quick_seconds in config file {path}; did you mean coach.quick_seconds?",
        ),
        ("[coach]\nquick_phrases = [1]\n", "invalid coach.quick_phrases[0] from config file {path}: Input should be"),
        ("[token_server]\nport = 70000\n", "invalid token_server.port from config file {path}: Input should be less"),
        ('input_file = "a\\u0000b"\n', "invalid input_file from config file {path}: contains a NUL character"),
        ("duration = nan\n", "invalid duration from config file {path}: Input should be a finite number"),
        ('ice_servers = ["stun.example.org"]\n', "invalid ice_servers from config file {path}: 'stun.example.org' is"),
        ('base_url = "http://h:99999/v1"\n', "invalid base_url from config file {path}: is not a valid URL"),
        ('events_file = "."\n', "invalid events_file from config file {path}: '.' is a directory"),
    ],
)
def test_file_errors_at_any_level(tmp_path: Path, toml: str, expected: str) -> None:
    path = write(tmp_path, toml)
    assert fails(path).startswith(expected.format(path=path))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"VOICECOACH_MODLE": "x"}, "unknown environment variable VOICECOACH_MODLE; did you mean VOICECOACH_MODEL?"),
        ({"VOICECOACH_QUICK_SECONDS": "5"}, "did you mean VOICECOACH_COACH__QUICK_SECONDS?"),
        (
            {"VOICECOACH_COACH__QUICK_SECONDS": "500"},
            "invalid coach.quick_seconds from environment variable "
            "VOICECOACH_COACH__QUICK_SECONDS: Input should be less than or equal to 170",
        ),
        ({"VOICECOACH_COACH": "{bad"}, "invalid coach from environment variable VOICECOACH_COACH: not valid JSON"),
        (
            {"VOICECOACH_COACH": '{"full_window": 0}'},
            "invalid coach.full_window from environment variable VOICECOACH_COACH:",
        ),
        (
            {"VOICECOACH_COACH__QUICK_PHRASES": '["a"'},
            "invalid coach.quick_phrases from environment variable VOICECOACH_COACH__QUICK_PHRASES: not valid JSON",
        ),
        (
            {"VOICECOACH_TOKEN_SERVER__PORT": "x"},
            "invalid token_server.port from environment variable VOICECOACH_TOKEN_SERVER__PORT",
        ),
        ({"OPENAI_BASE_URL": "http:///v1"}, "invalid base_url from environment variable OPENAI_BASE_URL"),
        (
            {"VOICECOACH_ICE_HOSTS": "127.0.0.1,localhost"},
            "invalid ice_hosts from environment variable VOICECOACH_ICE_HOSTS: 'localhost' is not an IP address",
        ),
        ({"VOICECOACH_VOICE": "\udcff"}, "invalid voice from environment variable VOICECOACH_VOICE: not valid UTF-8"),
    ],
)
def test_environment_errors_name_the_variable(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    assert expected in fails(write(tmp_path, ""), env)


def test_lists_take_commas_or_json_in_every_table(tmp_path: Path) -> None:
    env = {
        "VOICECOACH_COACH__QUICK_PHRASES": "nice one, tell me more",
        "VOICECOACH_COACH__INTERRUPT_PHRASES": '["thanks, got it", "stop"]',
        "VOICECOACH_ICE_SERVERS": '["stun:127.0.0.1:3478"]',
        "VOICECOACH_ICE_HOSTS": "127.0.0.1, ::1",
    }
    s = load_settings(write(tmp_path, ""), environ=env)
    assert s.coach.quick_phrases == ["nice one", "tell me more"]
    assert s.coach.interrupt_phrases == ["thanks, got it", "stop"]
    assert s.ice_servers == ["stun:127.0.0.1:3478"] and s.ice_hosts == ["127.0.0.1", "::1"]


def test_nested_keys_merge_across_sources_and_errors_follow_the_winner(tmp_path: Path) -> None:
    path = write(tmp_path, "[coach]\nquick_seconds = 500\nfull_window = 4\n")
    # The environment's valid value replaces the file's bad one; the file's other key stays.
    s = load_settings(path, environ={"VOICECOACH_COACH__QUICK_SECONDS": "5"})
    assert (s.coach.quick_seconds, s.coach.full_window) == (5, 4)
    message = fails(path, {"VOICECOACH_COACH__FULL_WINDOW": "7"})
    assert message.startswith(f"invalid coach.quick_seconds from config file {path}")
    assert "from --port" in fails(path, {"VOICECOACH_COACH__QUICK_SECONDS": "5"}, {"token_server": {"port": -1}})


def test_flag_errors_name_the_flag_typed(tmp_path: Path) -> None:
    message = fails(write(tmp_path, ""), flags={"ice_hosts": ["nope"]})
    assert message.startswith("invalid ice_hosts from --ice-hosts")  # the default name...
    with pytest.raises(ConfigError, match="from --ice-host:"):  # ...and the one cli passes
        load_settings(write(tmp_path, ""), {"ice_hosts": ["nope"]}, flag_names={"ice_hosts": "--ice-host"}, environ={})


def test_empty_variable_counts_as_unset_and_data_dir_is_not_a_setting(tmp_path: Path) -> None:
    env = {"VOICECOACH_MODEL": "", "VOICECOACH_DATA_DIR": str(tmp_path)}
    assert load_settings(write(tmp_path, ""), environ=env).model == "gpt-realtime-1.5"


def test_undecodable_argv_is_one_line_in_a_real_process(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICECOACH_", "OPENAI_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "voicecoach", "run", "--debug", "--model", b"\xff"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err
    assert err.splitlines()[-1] == (
        "voicecoach: error: invalid model from --model: not valid UTF-8 text; check the terminal's encoding"
    )


def test_saving_settings_refuses_a_non_utf8_file_in_one_line(tmp_path: Path) -> None:
    from voicecoach.coach.settings import CoachSettings
    from voicecoach.config_writer import save_coach_settings

    path = tmp_path / "config.toml"
    path.write_bytes(b"model = '\xff'\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text; fix it before saving settings$"):
        save_coach_settings(path, CoachSettings(quick_window=2))
    assert path.read_bytes() == b"model = '\xff'\n"  # untouched


@pytest.mark.parametrize("toml", ['"a\\nb" = 1\n', '[coach]\n"x\\ry" = 1\n', '"a\\u2028b" = 1\n'])
def test_a_key_with_a_line_break_is_quoted_in_a_one_line_error(tmp_path: Path, toml: str) -> None:
    """A key may hold any character; the error names it quoted, so it stays one line (found by hypothesis)."""
    path = tmp_path / "c.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith("unknown setting ") and len(message.splitlines()) == 1, message
    assert "'" in message.split(" in config file")[0]  # the key, quoted
