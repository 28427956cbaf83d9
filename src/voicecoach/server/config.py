"""Settings of the local Realtime server (``voicecoach serve``, ``voicecoach demo`` and the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from .faults import FaultConfig
from .local_config import LocalConfig
from .scenario import Scenario, default_scenario, load_scenario
from .session import SessionOptions

Transport = Literal["webrtc", "websocket", "both"]
TRANSPORTS: tuple[Transport, ...] = ("webrtc", "websocket", "both")
BackendName = Literal["scripted", "local"]
BACKENDS: tuple[BackendName, ...] = ("scripted", "local")


class ServerConfig(BaseModel):
    """``port=0`` picks a free port.

    ``api_key`` and ``api_keys``: the standard keys the server accepts (``voicecoach serve --require-key``);
    a wrong or missing one gets OpenAI's 401. With neither, any non-empty bearer key that is not an ``ek_`` is
    accepted (tests and the demo rely on that). Ephemeral keys the server minted work on ``/calls`` either way.

    ``scenario`` wins over ``scenario_path``; with neither, the built-in scenario is used.
    ``generation_speed``: how many times faster than real time a response is generated, so that
    ``response.done`` arrives well before its audio has finished playing, as with the real API.
    ``scenario_spans_calls``: each new call goes on with the scenario where the previous call left off (a client
    that reconnects mid-meeting keeps getting the next lines), instead of starting it again.
    ``faults``: HTTP faults in force from the start (see :mod:`.faults`; ``server.faults`` changes them live).
    ``transport``: which transports are served (``voicecoach serve --transport``). The one left out answers
    404 with a JSON error naming the flag: ``POST /v1/realtime/calls`` (and hangup) without ``webrtc``,
    ``GET /v1/realtime`` without ``websocket``. ``client_secrets`` is served either way.
    ``backend``: what the server hears, says and sounds like (:mod:`.backend`): ``scripted`` (the scenario; the
    default) or ``local`` (real speech recognition, a language model on this machine and a real voice, set by
    ``local``; the scenario is then unused).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    scenario: Scenario | None = None
    scenario_path: Path | None = None
    api_key: str | None = Field(default=None, repr=False)  # never shown in reprs or logs
    api_keys: tuple[str, ...] = Field(default=(), repr=False)
    session_max_seconds: float = Field(default=3600.0, gt=0)
    voice: Literal["auto", "espeak", "synth"] = "auto"
    generation_speed: float = Field(default=4.0, gt=0)
    ice_servers: list[str] = []
    record_seconds: float = Field(default=600.0, ge=0)  # how much received audio each call keeps (tests)
    response_latency: float = Field(default=0.12, ge=0)
    scenario_spans_calls: bool = False
    faults: FaultConfig = FaultConfig()
    transport: Transport = "both"
    backend: BackendName = "scripted"
    local: LocalConfig = LocalConfig()

    def serves(self, transport: str) -> bool:
        """Whether ``transport`` ("webrtc" or "websocket") is served."""
        return self.transport in ("both", transport)

    def accepted_keys(self) -> tuple[str, ...]:
        """Every standard key that is accepted; empty means any key is."""
        return ((self.api_key,) if self.api_key else ()) + self.api_keys

    def resolved_scenario(self) -> Scenario:
        if self.scenario is not None:
            return self.scenario
        if self.scenario_path is not None:
            return load_scenario(self.scenario_path)
        return default_scenario()

    def session_options(self) -> SessionOptions:
        return SessionOptions(
            session_max_seconds=self.session_max_seconds,
            generation_speed=self.generation_speed,
            response_latency=self.response_latency,
        )


def load_keys_file(path: Path, source: str = "--keys-file") -> tuple[str, ...]:
    """The keys in ``path``: one per line; blank lines and lines starting with ``#`` are skipped.

    Raises :class:`ConfigError` (one line naming the file and ``source``) when the file cannot be read, is
    not UTF-8 text, or holds no key. A key is never part of the message.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source} {path}: not UTF-8 text (byte {exc.start}); write one API key per line") from exc
    except OSError as exc:
        raise ConfigError(
            f"{source} {path}: cannot read it ({exc.strerror or exc}); give a readable file with one API key per line"
        ) from exc
    keys = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))
    if not keys:
        raise ConfigError(f"{source} {path}: no key in it; write one API key per line ('#' starts a comment)")
    for number, key in enumerate(keys, 1):
        if any(c.isspace() for c in key):
            raise ConfigError(f"{source} {path}: key {number} contains a space; write one API key per line")
    return keys


def serve_config(
    *,
    host: str,
    port: int,
    scenario_path: Path | None,
    session_max_seconds: float,
    require_keys: list[str] | None,
    keys_file: Path | None,
    transport: Transport = "both",
    backend: BackendName = "scripted",
    local: LocalConfig | None = None,
) -> ServerConfig:
    """The settings of ``voicecoach serve`` from its flags; a bad value is a :class:`ConfigError` naming the flag."""
    keys = tuple(require_keys or ())
    if any(not key.strip() or any(c.isspace() for c in key) for key in keys):
        raise ConfigError("--require-key: a key is empty or contains a space; give the API key itself")
    if keys_file is not None:
        keys += load_keys_file(keys_file)
    try:
        return ServerConfig(
            host=host,
            port=port,
            scenario_path=scenario_path,
            session_max_seconds=session_max_seconds,
            api_keys=keys,
            transport=transport,
            backend=backend,
            local=local or LocalConfig(),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        flag = "--" + field.replace("_", "-").removesuffix("-path")
        raise ConfigError(f"{flag} {error.get('input')!r}: {error['msg'].lower()}") from exc
