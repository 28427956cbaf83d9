"""Profiles: defaults < profile < config file < environment < flags, errors naming the source and the profile,
built-in profiles, user tables over them field by field, and the live switch (with_profile)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicecoach.coach.settings import CoachSettings
from voicecoach.config import Settings, load_settings, profile_sources, setting_origin, with_profile
from voicecoach.errors import ConfigError
from voicecoach.profiles import BUILTIN_PROFILES, Profile, available_profiles, settings_path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def fails(path: Path, env: dict[str, str] | None = None, flags: dict[str, object] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, flags, environ=env or {})
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    return message


# --- what a profile is ------------------------------------------------------------------------------------


def test_a_profile_sets_every_coach_setting_and_voice_and_instructions() -> None:
    """Profile mirrors CoachSettings (a new coach setting must be added to it), with the same bounds."""
    assert set(Profile.model_fields) == {*CoachSettings.model_fields, "voice", "instructions", "description"}
    for name in CoachSettings.model_fields:
        assert Profile.model_fields[name].default is None, name
        assert settings_path(name) == ("coach", name)
    # The same rule rejects the same value: a window of 0, a two-line label, an empty context file name.
    for bad in ({"quick_window": 0}, {"them_label": "a\nb"}, {"context_files": [""]}, {"quick_seconds": 171}):
        with pytest.raises(ValueError):
            CoachSettings(**bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            Profile(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["interview", "meeting", "study"])
def test_builtin_profiles_are_valid_and_written_for_their_situation(tmp_path: Path, name: str) -> None:
    profile = BUILTIN_PROFILES[name]
    assert profile.description and "\n" not in profile.description
    s = load_settings(write(tmp_path, ""), {"profile": name}, environ={})
    assert s.profile == name
    assert s.coach.quick_instructions == profile.quick_instructions != CoachSettings().quick_instructions
    assert s.coach.full_instructions == profile.full_instructions
    for text in (s.coach.quick_instructions, s.coach.full_instructions):
        assert "language of the conversation" in text and "no lists" in text


def test_builtin_instructions_say_what_each_situation_needs() -> None:
    interview, meeting, study = (BUILTIN_PROFILES[n] for n in ("interview", "meeting", "study"))
    assert interview.full_instructions is not None and "STAR" in interview.full_instructions
    assert interview.quick_instructions is not None and "check the CV" in interview.quick_instructions
    assert "which part of the CV to check" in interview.full_instructions
    for text in (interview.quick_instructions, interview.full_instructions):
        assert "never invent" in text and "context files" in text
    assert meeting.quick_instructions is not None and meeting.full_instructions is not None
    assert all(w in meeting.full_instructions for w in ("decided", "numbers", "next steps"))
    assert "never invent" in meeting.quick_instructions.lower()
    for text in (study.quick_instructions, study.full_instructions):
        assert text is not None and "Explain" in text and "check question" in text and "do not answer it" in text


# --- precedence across the five layers ------------------------------------------------------------------------


def five_layers(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, object]]:
    """voice and coach.context_files set by a profile, the file, the environment and a flag."""
    path = write(
        tmp_path,
        'profile = "mine"\nvoice = "v-file"\n[coach]\ncontext_files = ["file.md"]\n'
        '[profiles.mine]\nvoice = "v-profile"\ncontext_files = ["profile.md"]\nquick_window = 7\n',
    )
    env = {"VOICECOACH_VOICE": "v-env", "VOICECOACH_COACH__CONTEXT_FILES": "env.md"}
    flags: dict[str, object] = {"voice": "v-flag", "coach": {"context_files": [Path("flag.md")]}}
    return path, env, flags


def test_precedence_defaults_profile_file_env_flags(tmp_path: Path) -> None:
    path, env, flags = five_layers(tmp_path)
    s = load_settings(path, flags, environ=env)
    assert (s.voice, s.coach.context_files) == ("v-flag", [Path("flag.md")])
    assert s.coach.quick_window == 7  # only the profile sets it: it beats the default
    assert s.coach.full_window == 10  # nobody sets it: the default
    s = load_settings(path, environ=env)
    assert (s.voice, s.coach.context_files) == ("v-env", [Path("env.md")])
    s = load_settings(path, environ={})
    assert (s.voice, s.coach.context_files) == ("v-file", [tmp_path / "file.md"])
    path.write_text(path.read_text().replace('voice = "v-file"\n', "").replace('context_files = ["file.md"]\n', ""))
    s = load_settings(path, environ={})
    assert (s.voice, s.coach.context_files) == ("v-profile", [tmp_path / "profile.md"])
    s = load_settings(path, {"profile": ""}, environ={})  # --profile '': none, whatever the file says
    assert (s.voice, s.coach.context_files, s.profile) == ("alloy", [], None)


def test_the_profile_is_chosen_by_flag_over_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'profile = "study"\n')
    assert load_settings(path, environ={}).profile == "study"
    assert load_settings(path, environ={"VOICECOACH_PROFILE": "meeting"}).profile == "meeting"
    s = load_settings(path, {"profile": "interview"}, environ={"VOICECOACH_PROFILE": "meeting"})
    assert s.profile == "interview" and s.coach.full_instructions == BUILTIN_PROFILES["interview"].full_instructions
    assert setting_origin(s, "profile") == "--profile"
    assert setting_origin(s, "coach.full_instructions") == "profile 'interview' (built-in)"
    assert load_settings(write(tmp_path, ""), environ={}).profile is None


def test_a_user_table_with_a_builtin_name_overrides_it_field_by_field(tmp_path: Path) -> None:
    path = write(tmp_path, '[profiles.interview]\nquick_instructions = "mine"\nthem_label = "Interviewer"\n')
    s = load_settings(path, {"profile": "interview"}, environ={})
    assert s.coach.quick_instructions == "mine" and s.coach.them_label == "Interviewer"
    assert s.coach.full_instructions == BUILTIN_PROFILES["interview"].full_instructions  # kept from the built-in
    merged = available_profiles(s)["interview"]
    assert merged.quick_instructions == "mine" and merged.description == BUILTIN_PROFILES["interview"].description
    assert profile_sources(s)["interview"] == f"built-in, changed in config file {path}"
    assert profile_sources(s)["study"] == "built-in"


def test_profiles_from_the_environment_as_json(tmp_path: Path) -> None:
    env = {"VOICECOACH_PROFILES": '{"sales": {"full_window": 12}}', "VOICECOACH_PROFILE": "sales"}
    s = load_settings(write(tmp_path, ""), environ=env)
    assert s.coach.full_window == 12
    assert profile_sources(s)["sales"] == "environment variable VOICECOACH_PROFILES"


def test_context_files_in_a_config_file_are_relative_to_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    path = conf / "config.toml"
    path.write_text(
        '[coach]\ncontext_files = ["cv.md", "/abs/job.md", "~/notes.md"]\n'
        '[profiles.p]\ncontext_files = ["sub/agenda.md"]\n'
    )
    monkeypatch.chdir(tmp_path)  # elsewhere than the file
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    s = load_settings(path, environ={})
    assert s.coach.context_files == [conf / "cv.md", Path("/abs/job.md"), tmp_path / "home" / "notes.md"]
    assert s.profiles["p"].context_files == [conf / "sub" / "agenda.md"]
    # On the command line and in the environment a relative path stays relative to the current directory.
    s = load_settings(path, {"coach": {"context_files": [Path("here.md")]}}, environ={})
    assert s.coach.context_files == [Path("here.md")]
    assert load_settings(path, environ={"VOICECOACH_COACH__CONTEXT_FILES": "a.md"}).coach.context_files == [
        Path("a.md")
    ]


# --- errors name the source and the profile ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "flags", "expected"),
    [
        (
            'profile = "interview"\n[profiles.interview]\nquick_window = 0\n',
            {},
            "invalid coach.quick_window in profile 'interview' (config file {path}): "
            "Input should be greater than or equal to 1",
        ),
        (  # a profile that is not active is checked too: switching to it later must not fail
            "[profiles.sales]\nfull_seconds = 500\n",
            {},
            "invalid coach.full_seconds in profile 'sales' (config file {path}): Input should be less than",
        ),
        (
            "[profiles.sales]\nquick_phrases = [1]\n",
            {"profile": "sales"},
            "invalid coach.quick_phrases[0] in profile 'sales' (config file {path}): Input should be a valid string",
        ),
        ('[profiles.sales]\nvoice = ""\n', {}, "invalid voice in profile 'sales' (config file {path}): String should"),
        (
            '[profiles.sales]\nthem_label = "a\\nb"\n',
            {"profile": "sales"},
            "invalid coach.them_label in profile 'sales' (config file {path}): them_label must be",
        ),
        (
            "[profiles.sales]\nquik_window = 3\n",
            {},
            "unknown setting quik_window in profile 'sales' (config file {path}); did you mean quick_window?",
        ),
        ("[profiles]\nsales = 3\n", {}, "invalid profile 'sales' from config file {path}: must be a table"),
        ("profiles = 3\n", {}, "invalid profiles from config file {path}: must be a table of profiles"),
        ('[profiles."a b"]\n', {}, "invalid profiles from config file {path}: profile name 'a b' must be"),
        (
            'profile = "intervew"\n',
            {},
            "unknown profile 'intervew' from config file {path}; did you mean 'interview'? "
            "known profiles: interview, meeting, study",
        ),
        (
            "[profiles.sales]\n",
            {"profile": "nope"},
            "unknown profile 'nope' from --profile; known profiles: interview, meeting, study, sales",
        ),
        ("profile = 3\n", {}, "invalid profile from config file {path}: Input should be a valid string"),
    ],
)
def test_profile_errors_name_the_profile_and_the_source(
    tmp_path: Path, toml: str, flags: dict[str, object], expected: str
) -> None:
    path = write(tmp_path, toml)
    assert fails(path, flags=flags).startswith(expected.format(path=path))


def test_a_profile_error_names_the_variable_it_came_from(tmp_path: Path) -> None:
    message = fails(write(tmp_path, ""), {"VOICECOACH_PROFILES": '{"x": {"quick_window": 0}}'})
    assert message.startswith("invalid coach.quick_window in profile 'x' (environment variable VOICECOACH_PROFILES)")
    message = fails(write(tmp_path, ""), {"VOICECOACH_PROFILE": "sales"})
    assert message.startswith("unknown profile 'sales' from environment variable VOICECOACH_PROFILE;")


def test_a_file_value_that_beats_a_bad_profile_value_hides_it_only_for_that_profile(tmp_path: Path) -> None:
    """The file's coach.quick_window wins over the active profile's bad one, but the table itself is checked."""
    path = write(tmp_path, 'profile = "p"\n[coach]\nquick_window = 4\n[profiles.p]\nquick_window = 0\n')
    assert fails(path).startswith(f"invalid coach.quick_window in profile 'p' (config file {path})")


# --- the live switch ------------------------------------------------------------------------------------------


def test_with_profile_changes_what_the_profile_sets_and_keeps_the_other_layers(tmp_path: Path) -> None:
    path = write(tmp_path, '[coach]\nquick_window = 5\n[profiles.mine]\nquick_instructions = "mine"\n')
    s = load_settings(path, {"voice": "v-flag"}, environ={"VOICECOACH_COACH__FULL_WINDOW": "8"})
    t = with_profile(s, "meeting")
    assert t.profile == "meeting"
    assert t.coach.quick_instructions == BUILTIN_PROFILES["meeting"].quick_instructions
    assert (t.voice, t.coach.quick_window, t.coach.full_window) == ("v-flag", 5, 8)  # flag, file, env still win
    assert with_profile(t, "mine").coach.quick_instructions == "mine"
    back = with_profile(t, None)
    assert back.profile is None and back.coach == s.coach and back.voice == s.voice
    # Nothing but what the profile sets differs.
    diff = {k for k, v in t.coach.model_dump().items() if getattr(s.coach, k) != v}
    assert diff == {"quick_instructions", "full_instructions"}


def test_with_profile_keeps_changes_made_after_loading(tmp_path: Path) -> None:
    """The echo canceller's forced mute (a model_copy after load_settings) survives a profile switch."""
    s = load_settings(write(tmp_path, ""), {"profile": "interview"}, environ={})
    muted = s.model_copy(update={"coach": s.coach.model_copy(update={"mute_mic_while_speaking": True})})
    t = with_profile(muted, "study")
    assert t.coach.mute_mic_while_speaking is True
    assert t.coach.quick_instructions == BUILTIN_PROFILES["study"].quick_instructions
    assert setting_origin(t, "coach.mute_mic_while_speaking") == "a change made during this session"
    assert with_profile(t, "meeting").coach.mute_mic_while_speaking is True


def test_with_profile_on_settings_built_directly_keeps_their_values() -> None:
    s = Settings(model="m", coach=CoachSettings(quick_window=4))
    t = with_profile(s, "study")
    assert (t.model, t.coach.quick_window) == ("m", 4)
    assert t.coach.full_instructions == BUILTIN_PROFILES["study"].full_instructions


def test_with_profile_refuses_an_unknown_profile_listing_the_known_ones(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "[profiles.sales]\n"), environ={})
    with pytest.raises(ConfigError, match=r"^unknown profile 'nope'.*known profiles: interview, meeting, study, sales"):
        with_profile(s, "nope")


# --- no profile table, however odd, escapes as anything but one ConfigError line ------------------------------

profile_keys = st.one_of(st.sampled_from([*Profile.model_fields, "quik_window", "coach"]), st.text(max_size=6))
values = st.one_of(
    st.integers(-5, 300),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.booleans(),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
)
tables = st.dictionaries(
    st.one_of(st.sampled_from(["interview", "sales"]), st.text(max_size=5)),
    st.one_of(st.dictionaries(profile_keys, values, max_size=3), values),
    max_size=3,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables, active=st.one_of(st.none(), st.sampled_from(["interview", "sales", ""]), st.text(max_size=5)))
def test_any_profiles_table_gives_settings_or_one_config_error(
    tmp_path: Path, table: dict[str, object], active: str | None
) -> None:
    import json

    env = {"VOICECOACH_PROFILES": json.dumps(table)}
    if active:
        env["VOICECOACH_PROFILE"] = active
    try:
        s = load_settings(write(tmp_path, ""), environ=env)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        for name in available_profiles(s):  # every profile loaded is one a live switch can use
            assert with_profile(s, name).profile == name


def test_the_kept_sources_never_show_the_api_key(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""), environ={"OPENAI_API_KEY": "sk-kept-secret-123456"})
    assert "sk-kept-secret" not in repr(s) and "sk-kept-secret" not in repr(s.__pydantic_private__)
    assert with_profile(s, "study").api_key == s.api_key  # and the switch keeps it
