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

from ..coach.actions import Action, Interrupted, Level, LinkUp, Metric, Notice, Reconnecting, Send, StatusChanged
from ..coach.conversation import Message
from ..coach.labels import message_label, tier_label, transport_label
from ..coach.state import State
from .metrics import HEADLINE_LATENCY, describe_metric, format_ms
from .view import VoiceOutput

_LIVE = frozenset({State.LISTENING, State.SPEAKING, State.MUTED})
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

    def note(self, level: Level, text: str) -> None:
        """A notice of the UI's own (a profile switch): an event-log line, and a toast for a warning or error."""
        self._pending.append((Notice(level, text), self._last_now))

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
    voice: VoiceOutput | None = None
    state: State = State.DISCONNECTED
    was_live: bool = False
    reconnecting: bool = False
    transport: str = ""  # of the link now up ("webrtc", "websocket"), with why when it is not the one asked for
    transport_why: str = ""
    hint_latency_ms: float | None = None  # the headline: measured at the player (metrics.HEADLINE_LATENCY)
    cost_usd: float | None = None
    echo: str | None = None  # "echo: on", "echo: off" or "echo: muting" (echo_setup.EchoSetup.label); None: not shown
    profile: str | None = None  # the active profile (Settings.profile); None: no profile, and nothing is shown

    def on_state(self, state: State) -> None:
        if state in _LIVE:
            self.was_live = True
            self.reconnecting = False
        self.state = state

    def on_reconnecting(self) -> None:
        """A :class:`Reconnecting` action: the link is gone and a new one is being opened (cleared when live)."""
        self.reconnecting = True

    def on_link(self, link: LinkUp) -> None:
        self.transport, self.transport_why = link.transport, link.why

    def on_metric(self, metric: Metric) -> None:
        if metric.name == HEADLINE_LATENCY:
            self.hint_latency_ms = metric.value
        elif metric.name in ("response.cost_usd", "transcription.cost_usd"):
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

    def render(self, width: int | None = None) -> Text:
        """The bar's one line, fitted to ``width`` cells (None: everything at full length).

        Connection, the three indicators and the cost always stay; when the line is too long the model goes
        first, then the voice's and the latency's labels shrink, then they go too (see :data:`_SHRINK`).
        """
        fields = self._fields()
        line = _join(fields)
        if width is None:
            return line
        for name, short in _SHRINK:
            if line.cell_len <= width:
                return line
            if name in fields:
                fields[name] = (fields[name][1:] or fields[name]) if short else []
                line = _join(fields)
        line.truncate(width)  # narrower than even the essentials: cut at the edge rather than wrap
        return line

    def _fields(self) -> dict[str, list[Text]]:
        """Each field as its variants, longest first; the bar shows the first one that fits."""
        colour = {"connected": "green", "reconnecting": "yellow", "connecting": "yellow"}.get(self.connection, "red")
        fields: dict[str, list[Text]] = {
            "connection": [Text.assemble((" ● ", colour), (self.connection, f"bold {colour}"))],
        }
        if self.transport:
            label = transport_label(self.transport)
            # "WebSocket (fallback)" in yellow when WebRTC could not come up; the reason is in the event log
            fallback = f"{label} (fallback)" if self.transport_why else label
            fields["transport"] = [Text(fallback, "yellow" if self.transport_why else ""), Text(label)]
        for name, lit, style in (
            ("listening", self.listening, "bold green"),
            ("speaking", self.speaking, "bold magenta"),
            ("muted", self.muted, "bold red"),
        ):
            fields[name] = [Text(f"◉ {name}" if lit else f"○ {name}", style if lit else "dim")]
        latency = "—" if self.hint_latency_ms is None else format_ms(self.hint_latency_ms)
        fields["latency"] = [Text(f"hint → audio {latency}"), Text(f"hint {latency}")]
        if self.voice is not None:
            style = "bold yellow" if self.voice.kind == "none" else ""
            fields["voice"] = [Text(self.voice.short(), style), Text(self.voice.short(narrow=True), style)]
        if self.echo is not None:
            # Muting is the fallback (the canceller could not load): worth a colour, as "voice not played" is.
            style = {"echo: muting": "yellow", "echo: off": "dim"}.get(self.echo, "")
            fields["echo"] = [Text(self.echo, style)]
        if self.profile is not None:
            fields["profile"] = [Text.assemble(("profile ", "dim"), (self.profile, "bold")), Text(self.profile, "bold")]
        fields["model"] = [Text(self.model, "cyan")]
        cost = "—" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        fields["cost"] = [Text(f"cost {cost}"), Text(cost)]
        return fields


# What gives way first when the status bar is too narrow: (field, True = its shorter form / False = drop it).
# Connection, listening, speaking and muted never go; the cost only loses its word. At 80 columns a live session
# keeps everything but the model, in short form. Whether the microphone is echo-cancelled outlasts the latency
# and the voice: it tells why the coach hears (or does not hear) itself. The profile (what the hints are written
# for) loses its word early, then outlasts the echo label: at 80 columns a switched profile is still in sight.
_SHRINK: tuple[tuple[str, bool], ...] = (
    ("model", False),
    ("profile", True),
    ("transport", True),
    ("latency", True),
    ("voice", True),
    ("cost", True),
    ("voice", False),
    ("latency", False),
    ("echo", False),
    ("profile", False),
    ("transport", False),
)
_GROUPS = (
    ("connection", "transport"),
    ("listening", "speaking", "muted"),
    ("latency", "voice", "echo", "profile", "model", "cost"),
)


def _join(fields: dict[str, list[Text]]) -> Text:
    groups = [[fields[n][0] for n in names if fields.get(n)] for names in _GROUPS]
    line = Text()
    for n, group in enumerate(g for g in groups if g):
        if n:
            line.append(" │ ")
        line.append_text(Text(" ").join(group) if n == 1 else Text(" │ ").join(group))
    return line


def render_message(message: Message, final: bool) -> Text:
    """One transcript line: a styled speaker label, the text, and markers for unfinished/interrupted."""
    who = message_label(message)
    if message.role == "user":
        label = Text(who, style="bold cyan")
    elif message.role == "them":
        label = Text(who, style="bold green")
    else:
        tier = tier_label(message.tier)
        label = Text(f"{who} · {tier}" if tier else who, style="bold magenta")
    # Plain Text, never markup: a transcript can contain "[" and must not be parsed as styles.
    line = Text.assemble(label, ": ", message.text.strip())
    if message.interrupted:
        line.append(" [interrupted]", style="bold red")
    elif not (final or message.done):
        line.append(" …", style="dim")
    return line


@dataclass(frozen=True)
class LogEntry:
    """One event-log line. The filter box matches a substring of ``kind`` (``notice/error``, ``metric``,
    ``sent``, ``state``, ``info``) or of the text, so "hint" finds every hint metric and "error" every error."""

    t: float | None
    kind: str
    text: str
    style: str = ""

    def matches(self, needle: str) -> bool:
        folded = needle.casefold()
        return folded in self.kind.casefold() or folded in self.text.casefold()

    def render(self) -> Text:
        when = " " * 8 if self.t is None else f"{self.t:8.3f}"
        return Text.assemble((f"{when} ", "dim"), (f"{self.kind:<{KIND_WIDTH}} ", "bold"), (self.text, self.style))


KIND_WIDTH = 14  # "notice/warning"; narrow, so that the text keeps most of an 80-column line


def log_entries(batch: Iterable[Pending], t0: float | None) -> Iterator[LogEntry]:
    """The event-log lines for a batch: notices (every level), metrics, state changes, events sent, info lines.

    Times are seconds since ``t0`` (the session's first action), or None when either is unknown. Metrics are
    shown as sentences (:func:`~voicecoach.ui.metrics.describe_metric`); their names are for the events file.
    """
    for item, now in batch:
        t = None if now is None or t0 is None else now - t0
        match item:
            case Interrupted(why=why):
                yield LogEntry(t, "interrupted", why)
            case Reconnecting(reason=reason):
                yield LogEntry(t, "reconnecting", reason, LEVEL_STYLES["warning"])
            case LinkUp():
                yield LogEntry(t, "connected", item.text)
            case Notice(level=level, text=text, data=data):
                extra = f" {data}" if data else ""
                yield LogEntry(t, f"notice/{level}", text + extra, LEVEL_STYLES[level])
            case Metric():
                yield LogEntry(t, "metric", describe_metric(item))
            case StatusChanged(state=state, previous=previous):
                yield LogEntry(t, "state", f"{previous.value} → {state.value}")
            case Send(event=event):
                yield LogEntry(t, "sent", getattr(event, "type", type(event).__name__), "dim")
            case Info(text=text):
                yield LogEntry(t, "info", text)
            case _:
                pass
