"""Settings: defaults < TOML file < environment < command-line flags (pydantic-settings).

Call :func:`load_settings`. It never lets a ``ValidationError`` escape: an invalid value becomes one
:class:`~voicecoach.errors.ConfigError` line naming the source (flag, variable or file), the field and what is
allowed. Secret values are never echoed in those messages.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .coach.settings import CoachSettings
from .errors import ConfigError

ENV_PREFIX = "VOICECOACH_"
DEFAULT_BASE_URL = "https://api.openai.com/v1"

# The TOML values of the load in progress; a ContextVar because pydantic-settings builds sources on a classmethod.
_toml_values: ContextVar[dict[str, Any] | None] = ContextVar("_toml_values", default=None)


def default_config_path() -> Path:
    return platformdirs.user_config_path("voicecoach") / "config.toml"


def _comma_list(value: Any) -> Any:
    # VOICECOACH_ICE_HOSTS=127.0.0.1,::1 — lists from the environment are comma-separated, not JSON.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
        case_sensitive=False,
        env_nested_delimiter="__",
    )

    # --- connection -------------------------------------------------------------------------------------
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("api_key", "VOICECOACH_API_KEY", "OPENAI_API_KEY")
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL, validation_alias=AliasChoices("base_url", "VOICECOACH_BASE_URL", "OPENAI_BASE_URL")
    )
    model: str = "gpt-realtime-1.5"
    voice: str = "alloy"
    token_ttl_seconds: int = Field(default=600, ge=10, le=7200)
    # A token server (voicecoach token-server) mints ephemeral keys for clients that hold no API key.
    token_url: str | None = None
    token_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("token_secret", "VOICECOACH_TOKEN_SECRET")
    )
    ice_servers: Annotated[list[str], NoDecode] = []
    ice_hosts: Annotated[list[str], NoDecode] = []
    http_timeout: float = Field(default=10.0, gt=0)
    # The server ends a session after 60 minutes (session_expired); we renew it this long before that.
    session_max_seconds: float = Field(default=3600.0, gt=0)
    # None: 120 s, or a tenth of session_max_seconds when that is shorter.
    rollover_margin_seconds: float | None = Field(default=None, ge=0)
    connect_timeout: float = Field(default=10.0, gt=0)

    # --- listening ---------------------------------------------------------------------------------------
    instructions: str = (
        "You are a discreet coach whispering into the ear of a person in a meeting, interview or study "
        "session. Speak only when asked, briefly, in the language of the conversation."
    )
    transcription_model: str = "gpt-4o-mini-transcribe"
    transcription_language: str | None = None
    noise_reduction: Literal["near_field", "far_field", "off"] = "near_field"
    vad_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    vad_silence_ms: int = Field(default=500, ge=0)
    vad_prefix_padding_ms: int = Field(default=300, ge=0)

    # --- audio -------------------------------------------------------------------------------------------
    input_file: Path | None = None
    output_file: Path | None = None
    output_rate: int = Field(default=24000, ge=8000, le=192000)
    input_device: str | None = None
    output_device: str | None = None
    prebuffer_ms: int = Field(default=80, ge=0, le=1000)

    # --- run ---------------------------------------------------------------------------------------------
    events_file: Path | None = None
    duration: float | None = Field(default=None, gt=0)
    plain: bool = False
    keep_sessions: bool = True  # write each session's transcript to the user data dir

    # --- the coach ([coach] in the TOML file, VOICECOACH_COACH__QUICK_SECONDS=8 in the environment) ------
    coach: CoachSettings = CoachSettings()

    _split_lists = field_validator("ice_servers", "ice_hosts", mode="before")(_comma_list)

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

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. http://127.0.0.1:8765/v1")
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: flags (init), then the environment, then the TOML file; defaults last.
        return (init_settings, env_settings, InitSettingsSource(settings_cls, _toml_values.get() or {}))


def load_settings(config_path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the settings. ``config_path=None`` reads the default file if it exists.

    ``overrides`` are command-line flags (field name → value; ``None`` values mean "not given").
    """
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    explicit = config_path is not None
    path = config_path if config_path is not None else default_config_path()
    toml = read_toml(path, required=explicit)
    token = _toml_values.set(toml)
    try:
        return Settings(**flags)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, flags, toml, path)) from None
    finally:
        _toml_values.reset(token)


def read_toml(path: Path, *, required: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist; create it or drop --config") from None
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def _describe(exc: ValidationError, flags: Mapping[str, Any], toml: Mapping[str, Any], path: Path) -> str:
    """One line for the first error: where the bad value came from, which field, what is allowed."""
    error = exc.errors()[0]
    if not error["loc"]:  # a rule across fields (model validator): its message names the fields
        return f"invalid settings: {error['msg'].removeprefix('Value error, ')}"
    key = str(error["loc"][0])
    field = _field_for(key)
    if error["type"] == "extra_forbidden":
        known = ", ".join(sorted(Settings.model_fields))
        return f"unknown setting {key!r} in config file {path}; known settings: {known}"
    source = _source_of(field, flags, toml, path)
    detail = error["msg"].removeprefix("Value error, ")
    if error["loc"][1:]:
        detail = f"{'.'.join(str(p) for p in error['loc'][1:])}: {detail}"
    return f"invalid {field} from {source}: {detail}"


def _field_for(key: str) -> str:
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if key == name or (isinstance(alias, AliasChoices) and key in alias.choices):
            return name
    return key


def _env_names(field: str) -> list[str]:
    alias = Settings.model_fields[field].validation_alias if field in Settings.model_fields else None
    if isinstance(alias, AliasChoices):
        return [str(c) for c in alias.choices if str(c).isupper()]
    return [ENV_PREFIX + field.upper()]


def _source_of(field: str, flags: Mapping[str, Any], toml: Mapping[str, Any], path: Path) -> str:
    if field in flags:
        return "--" + field.replace("_", "-")
    environ = {k.upper() for k in os.environ}
    for name in _env_names(field):
        if name in environ:
            return f"environment variable {name}"
    if field in toml:
        return f"config file {path}"
    return "the default"
