"""The pure half of the terminal UI: the View adapter's buffer, the status model and how things are rendered.

Nothing here touches Textual widgets, so it is cheap to call from the runner and easy to test. The runner calls
:meth:`TuiView.show` on the event loop for every action (bursts of ~1000/s); it only appends to a list. The app
drains that list on a ~30 Hz timer and applies the whole batch at once, so the widgets are updated at most 30
times a second however fast events come.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeAlias

from rich.text import Text

from ..coach.actions import Action, Metric, Notice, Send, StatusChanged
from ..coach.conversation import Message
from ..coach.state import State

_LIVE = frozenset({State.LISTENING, State.SPEAKING, State.MUTED})
TIER_LABELS = {"quick": "quick hint", "full": "full guidance"}
LEVEL_STYLES = {"debug": "dim", "info": "", "warning": "yellow", "error": "bold red"}


@dataclass(frozen=True)
class Info:
    """A session-level line from :meth:`TuiView.info` (connecting to…, summaries)."""

    text: str


# ``now`` is None for an info line shown before any action (there is no session clock yet).
Pending: TypeAlias = tuple[Action | Info, float | None]


class TuiView:
    """The :class:`~voicecoach.ui.view.View` the runner is given. ``show`` and ``info`` never block.

    Contract: call ``show``/``info`` only from the event loop thread (the runner does); the app calls
    :meth:`drain` from the same loop, so no lock is needed.
    """

    def __init__(self) -> None:
        self._pending: list[Pending] = []
        self._last_now: float | None = None

    def show(self, action: Action, now: float) -> None:
        self._last_now = now
        self._pending.append((action, now))

    def info(self, text: str) -> None:
        self._pending.append((Info(text), self._last_now))

    def drain(self) -> list[Pending]:
        """Everything shown since the last drain, oldest first."""
        batch, self._pending = self._pending, []
        return batch

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def last_now(self) -> float | None:
        """The ``now`` of the latest action shown (None before any)."""
        return self._last_now


@dataclass
class StatusModel:
    """What the status bar shows, folded from actions. ``connection`` is the one derived value."""

    model: str
    state: State = State.DISCONNECTED
    was_live: bool = False
    reconnecting: bool = False
    hint_latency_ms: float | None = None
    cost_usd: float | None = None

    def on_state(self, state: State) -> None:
        if state in _LIVE:
            self.was_live = True
            self.reconnecting = False
        self.state = state

    def on_notice(self, notice: Notice) -> None:
        flag = notice.data.get("reconnecting")
        if isinstance(flag, bool):
            self.reconnecting = flag

    def on_metric(self, metric: Metric) -> None:
        if metric.name == "hint.create_to_audio_ms":
            self.hint_latency_ms = metric.value
        elif metric.name == "response.cost_usd":
            total = metric.data.get("total_usd")
            # The running total is what a user wants; fall back to summing single costs if it is missing.
            if isinstance(total, int | float):
                self.cost_usd = float(total)
            else:
                self.cost_usd = (self.cost_usd or 0.0) + metric.value

    @property
    def connection(self) -> str:
        if self.state in _LIVE:
            return "connected"
        # Connecting again after having been live is a reconnect, whether or not a notice said so.
        if self.reconnecting or (self.state is State.CONNECTING and self.was_live):
            return "reconnecting"
        return self.state.value  # "connecting" or "disconnected"

    @property
    def listening(self) -> bool:
        return self.state in (State.LISTENING, State.SPEAKING)

    @property
    def speaking(self) -> bool:
        return self.state is State.SPEAKING

    @property
    def muted(self) -> bool:
        return self.state is State.MUTED

    def render(self) -> Text:
        colour = {"connected": "green", "reconnecting": "yellow", "connecting": "yellow"}.get(self.connection, "red")
        text = Text.assemble((" ● ", colour), (self.connection, f"bold {colour}"), " │ ")
        for name, lit, style in (
            ("listening", self.listening, "bold green"),
            ("speaking", self.speaking, "bold magenta"),
            ("muted", self.muted, "bold red"),
        ):
            text.append(f"◉ {name}" if lit else f"○ {name}", style if lit else "dim")
            text.append("  ")
        text.append("│ ")
        text.append(self.model, "cyan")
        latency = "—" if self.hint_latency_ms is None else f"{self.hint_latency_ms:.0f} ms"
        cost = "—" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        text.append(f" │ hint {latency} │ cost {cost}")
        return text


def render_message(message: Message, final: bool) -> Text:
    """One transcript line: a styled speaker label, the text, and markers for unfinished/interrupted."""
    if message.role == "user":
        label = Text("You", style="bold cyan")
    else:
        tier = TIER_LABELS.get(message.tier or "")
        label = Text(f"Coach · {tier}" if tier else "Coach", style="bold magenta")
    # Plain Text, never markup: a transcript can contain "[" and must not be parsed as styles.
    line = Text.assemble(label, ": ", message.text.strip())
    if message.interrupted:
        line.append(" [interrupted]", style="bold red")
    elif not (final or message.done):
        line.append(" …", style="dim")
    return line


@dataclass(frozen=True)
class LogEntry:
    """One event-log line. ``kind`` (e.g. ``notice/error``, ``metric/hint.create_to_audio_ms``) is what the
    filter box matches by substring."""

    t: float | None
    kind: str
    text: str
    style: str = ""

    def matches(self, needle: str) -> bool:
        return needle.casefold() in self.kind.casefold()

    def render(self) -> Text:
        when = " " * 9 if self.t is None else f"{self.t:9.3f}"
        return Text.assemble((f"{when} ", "dim"), (f"{self.kind:<36} ", "bold"), (self.text, self.style))


def log_entries(batch: Iterable[Pending], t0: float | None) -> Iterator[LogEntry]:
    """The event-log lines for a batch: notices (every level), metrics, state changes, events sent, info lines.

    Times are seconds since ``t0`` (the session's first action), or None when either is unknown.
    """
    for item, now in batch:
        t = None if now is None or t0 is None else now - t0
        match item:
            case Notice(level=level, text=text, data=data):
                extra = f" {data}" if data else ""
                yield LogEntry(t, f"notice/{level}", text + extra, LEVEL_STYLES[level])
            case Metric(name=name, value=value, data=data):
                extra = " " + ", ".join(f"{k}={_short(v)}" for k, v in data.items()) if data else ""
                yield LogEntry(t, f"metric/{name}", f"{value:.6g}{extra}")
            case StatusChanged(state=state, previous=previous):
                yield LogEntry(t, "state", f"{previous.value} → {state.value}")
            case Send(event=event):
                yield LogEntry(t, f"sent/{getattr(event, 'type', type(event).__name__)}", "", "dim")
            case Info(text=text):
                yield LogEntry(t, "session/info", text)
            case _:
                pass


def _short(value: object) -> str:
    # Sums of float costs print as 0.0036639999999999997; six significant digits are plenty in a log line.
    return f"{value:.6g}" if isinstance(value, float) else str(value)
