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
        ("bogus = 1\n", {}, {}, "unknown setting 'bogus' in config file"),
        ("[coach]\nquick_window = 0\n", {}, {}, "invalid coach from config file"),
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
