"""What the pure coach asks the runner to do. The runner executes actions in order, immediately."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from ..protocol.client_events import ClientEvent
from .conversation import Message
from .labels import transport_label
from .state import State


class Intent(StrEnum):
    """What a key (or a script line) asks for."""

    QUICK_HINT = "quick"
    FULL_GUIDANCE = "full"
    INTERRUPT = "interrupt"
    TOGGLE_MUTE = "mute"
    QUIT = "quit"


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


MetricName = Literal[
    "hint.trigger_to_send_ms",  # trigger (phrase or key) → response.create handed to the transport
    "hint.trigger_to_server_audio_ms",  # trigger → the server's output_audio_buffer.started (not yet heard)
    "hint.trigger_to_audible_ms",  # trigger → the player's first audible sample (what the person hears)
    "hint.interrupt_to_silence_ms",  # interrupt → the player fell silent
    "response.cost_usd",
    "response.input_tokens",
    "transcription.cost_usd",  # one utterance's transcription (data: channel, total_usd of the whole run)
]
METRIC_LABELS: dict[MetricName, str] = {
    "hint.trigger_to_send_ms": "hint requested after",
    "hint.trigger_to_server_audio_ms": "server started the hint's audio after",
    "hint.trigger_to_audible_ms": "hint started speaking after",
    "hint.interrupt_to_silence_ms": "silent after the interrupt in",
    "response.cost_usd": "response cost",
    "response.input_tokens": "response input tokens",
    "transcription.cost_usd": "transcription cost",
}


@dataclass(frozen=True)
class Metric:
    """A measured figure for the UI and the events file; its words for a reader are in ``METRIC_LABELS``."""

    name: MetricName
    value: float
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EndSession:
    reason: str
    fatal: bool = False


@dataclass(frozen=True)
class Reconnect:
    """Replace the current link by a fresh session and keep the context: the server ended the session
    (``session_expired``), or the rollover before the server's time limit is due (from ``tick``)."""

    reason: str


@dataclass(frozen=True)
class Reconnecting:
    """For the views and the journal: the link is gone and a new one is being opened (``reason`` says why)."""

    reason: str

    @property
    def text(self) -> str:
        return f"reconnecting: {self.reason}"


@dataclass(frozen=True)
class LinkUp:
    """For the views: a link is up over ``transport`` ("webrtc", "websocket"); ``why`` says why this one, when
    it is not the one asked for (the WebSocket after WebRTC could not come up)."""

    transport: str
    why: str = ""

    @property
    def text(self) -> str:
        label = transport_label(self.transport)
        return f"connected over {label} ({self.why})" if self.why else f"connected over {label}"


@dataclass(frozen=True)
class Interrupted:
    """The coach was cut off (flush, cancel and clear went out just before): ``why`` is "key", "said 'got it'",
    "new quick request"... ``hints`` are the numbers of the hints it cut."""

    why: str
    hints: tuple[int, ...] = ()

    @property
    def text(self) -> str:
        return f"interrupted ({self.why})"


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
    | Reconnecting
    | LinkUp
    | Interrupted
    | Quit
)
