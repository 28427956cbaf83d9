"""The ``[hotkeys]`` table: which global key combination does which command, and how they are caught.

Plain pydantic, like :mod:`voicecoach.tokenserver_settings`: :mod:`voicecoach.config` nests it as ``[hotkeys]``
in the TOML file and ``VOICECOACH_HOTKEYS__HINT="<ctrl>+<alt>+h"`` in the environment. Nothing is bound by
default: a global hotkey takes a chord from every other application, so only the user picks one.

Each binding is stored in its normal form (:func:`voicecoach.hotkeys.keys.parse_binding`), so ``Ctrl+Alt+H``
and ``<ctrl>+<alt>+h`` are the same setting and two commands cannot share one chord unnoticed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .keys import Binding, parse_binding

# The commands a hotkey can give, in the order the start-up line lists them (voicecoach.control's names).
COMMANDS = ("hint", "guide", "stop", "mute")
Mechanism = Literal["auto", "pynput", "portal", "off"]


class HotkeySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A quick switch that keeps the bindings (VOICECOACH_HOTKEYS__ENABLED=false for one run).
    enabled: bool = Field(default=True, description="false: bind nothing, whatever the table says")
    hint: str | None = Field(default=None, description="a quick hint, like <ctrl>+<alt>+h")
    guide: str | None = Field(default=None, description="full guidance")
    stop: str | None = Field(default=None, description="stop the coach talking (interrupt)")
    mute: str | None = Field(default=None, description="mute the microphone")
    # auto: pynput on X11, macOS and Windows; the desktop portal on Wayland. off: bind nothing, say so.
    mechanism: Mechanism = "auto"

    @field_validator(*COMMANDS)
    @classmethod
    def _normal_form(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_binding(value))

    @model_validator(mode="after")
    def _one_command_per_chord(self) -> HotkeySettings:
        seen: dict[str, str] = {}
        for name in COMMANDS:
            chord = getattr(self, name)
            if chord is None:
                continue
            if chord in seen:
                raise ValueError(f"hotkeys.{seen[chord]} and hotkeys.{name} are both {chord}; give each its own keys")
            seen[chord] = name
        return self

    def bindings(self) -> dict[str, Binding]:
        """Command → binding, for the commands that have one (in :data:`COMMANDS` order)."""
        return {name: parse_binding(chord) for name in COMMANDS if (chord := getattr(self, name)) is not None}
