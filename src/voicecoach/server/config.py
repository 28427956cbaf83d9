"""Settings of the local Realtime server (``voicecoach serve``, ``voicecoach demo`` and the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .faults import FaultConfig
from .scenario import Scenario, default_scenario, load_scenario
from .session import SessionOptions


class ServerConfig(BaseModel):
    """``port=0`` picks a free port. ``api_key=None`` accepts any non-empty bearer key that is not an ``ek_``.

    ``scenario`` wins over ``scenario_path``; with neither, the built-in scenario is used.
    ``generation_speed``: how many times faster than real time a response is generated, so that
    ``response.done`` arrives well before its audio has finished playing, as with the real API.
    ``scenario_spans_calls``: each new call goes on with the scenario where the previous call left off (a client
    that reconnects mid-meeting keeps getting the next lines), instead of starting it again.
    ``faults``: HTTP faults in force from the start (see :mod:`.faults`; ``server.faults`` changes them live).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    scenario: Scenario | None = None
    scenario_path: Path | None = None
    api_key: str | None = Field(default=None, repr=False)  # never shown in reprs or logs
    session_max_seconds: float = Field(default=3600.0, gt=0)
    voice: Literal["auto", "espeak", "synth"] = "auto"
    generation_speed: float = Field(default=4.0, gt=0)
    ice_servers: list[str] = []
    record_seconds: float = Field(default=600.0, ge=0)  # how much received audio each call keeps (tests)
    response_latency: float = Field(default=0.12, ge=0)
    scenario_spans_calls: bool = False
    faults: FaultConfig = FaultConfig()

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
