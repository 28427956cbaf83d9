"""What the pure coach asks the runner to do. The runner executes actions in order, immediately."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from ..protocol.client_events import ClientEvent
from .conversation import Message
from .state import State


class Intent(StrEnum):
    """What a key (or a script line) asks for."""

    QUICK_HINT = "quick"
    FULL_GUIDANCE = "full"
    INTERRUPT = "interrupt"
    TOGGLE_MUTE = "mute"
    QUIT = "quit"


KEY_INTENTS: dict[str, Intent] = {
    "h": Intent.QUICK_HINT,
    "g": Intent.FULL_GUIDANCE,
    "i": Intent.INTERRUPT,
    " ": Intent.INTERRUPT,
    "m": Intent.TOGGLE_MUTE,
    "q": Intent.QUIT,
}


def intent_for_key(key: str) -> Intent | None:
    return KEY_INTENTS.get(key.lower() if key != " " else key)


@dataclass(frozen=True)
class Send:
    event: ClientEvent
    # When the user asked for this (trigger phrase or key), for the trigger → sent latency figure.
    asked_at: float | None = None


@dataclass(frozen=True)
class FlushPlayback:
    """Fade out and drop everything queued in the player, now."""

    asked_at: float


@dataclass(frozen=True)
class ExpectAudio:
    """Audio from now on belongs to this response (the player counts what it plays of it)."""

    response_id: str


@dataclass(frozen=True)
class SetMicMuted:
    muted: bool


@dataclass(frozen=True)
class OpenMic:
    """``session.updated`` arrived: microphone audio may flow."""


@dataclass(frozen=True)
class StatusChanged:
    state: State
    previous: State


@dataclass(frozen=True)
class TranscriptChanged:
    message: Message
    final: bool


Level = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class Notice:
    level: Level
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A measured figure (e.g. ``hint.trigger_to_send_ms``) for the UI and the events file."""

    name: str
    value: float
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EndSession:
    reason: str
    fatal: bool = False


@dataclass(frozen=True)
class Reconnect:
    """The session is over on the server's side (e.g. ``session_expired``): open a new one, keep the context."""

    reason: str


@dataclass(frozen=True)
class Quit:
    pass


Action = (
    Send
    | FlushPlayback
    | ExpectAudio
    | SetMicMuted
    | OpenMic
    | StatusChanged
    | TranscriptChanged
    | Notice
    | Metric
    | EndSession
    | Reconnect
    | Quit
)
