"""Carries out the coach's actions, in order, at once: the runner's hands.

The coach decides; this module moves the decision into the world: an event onto the current link, a flush
into the player, a mute onto the microphone, a finished item into the journal, a figure into the events file,
and every action onto the view. Lifecycle consequences (stop, renew, the end error) are handed back to the
runner through :class:`RunControl`, so this module owns no task and no link.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, assert_never

from .audio.tracks import Player
from .coach.actions import (
    Action,
    EndSession,
    ExpectAudio,
    FlushPlayback,
    Interrupted,
    LinkUp,
    Metric,
    Notice,
    OpenMic,
    Quit,
    Reconnect,
    Reconnecting,
    Send,
    SetMicMuted,
    StatusChanged,
    TranscriptChanged,
)
from .coach.conversation import Message
from .coach.cost import CostBreakdown
from .coach.labels import JOURNAL_SPEAKERS, message_label
from .errors import SessionError, TransportError, VoicecoachError
from .events_log import EventsLog
from .journal import Journal
from .link import Link
from .protocol import client_events as ce
from .protocol.server_events import MalformedEvent, ServerEvent, decode_message, parse_server_dict
from .ui.view import View

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What a finished run leaves behind (for summaries, tests and benchmarks)."""

    reason: str = ""
    connect_ms: dict[str, float] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    cost_usd: float = 0.0
    transcript: list[str] = field(default_factory=list)
    links: int = 0  # connections made: 1 + reconnects + rollovers
    transport: str = ""  # the transport of the last link
    session_path: Path | None = None  # the crash-safe transcript file, when one was written
    underruns: int = 0  # times the player ran dry while playing
    device_underruns: int = 0  # times the sound card itself ran dry (PortAudio/ALSA underflows)
    end_error: VoicecoachError | None = None  # the server ended the run for good
    them_links: int = 0  # connections of the other side's transcription link (0: the run had no them source)
    cost: CostBreakdown | None = None  # the cost in parts (hints, of which context; each channel's transcription)


class RunControl(Protocol):
    """What the executor asks of the runner's lifecycle."""

    def stop(self, reason: str) -> None: ...

    def renew(self, reason: str) -> None: ...

    def ready(self) -> None:
        """The current link's session is configured: keys pressed while connecting may act now."""


class Executor:
    def __init__(
        self,
        *,
        view: View,
        player: Player,
        journal: Journal,
        events: EventsLog | None,
        report: RunReport,
        control: RunControl,
        clock: Callable[[], float],
    ) -> None:
        self.view = view
        self.player = player
        self.journal = journal
        self.events = events
        self.report = report
        self.control = control
        self.clock = clock
        self.link: Link | None = None  # the link events go out on; None while (re)connecting
        self.muted = False  # outlives links: a reconnect keeps the user's mute
        self._epoch_of: Link | None = None  # the link whose audio epoch new_audio_epoch() last gave
        self._hint_lines: dict[str, int] = {}  # response id → its line in report.transcript (a cut rewrites it)

    def new_audio_epoch(self) -> float | None:
        """The current link's audio epoch (:attr:`Link.audio_epoch`) the first time it is known, else None."""
        link = self.link
        if link is None or link is self._epoch_of or (epoch := link.audio_epoch) is None:
            return None
        self._epoch_of = link
        return epoch

    def unlink(self) -> None:
        """The current link is closing: events go nowhere until the next one is up."""
        self.link = None

    def execute(self, actions: list[Action]) -> None:
        for action in actions:
            self._apply(action)
            self.view.show(action, self.clock())

    def _apply(self, action: Action) -> None:
        match action:
            case Send(event=event, asked_at=asked_at):
                self.send(event)
                if asked_at is not None and isinstance(event, ce.ResponseCreate):
                    self.execute([Metric("hint.trigger_to_send_ms", (self.clock() - asked_at) * 1000)])
            case ExpectAudio(response_id=response_id):
                self.player.mark_response(response_id)
            case FlushPlayback():
                self.player.flush()
            case SetMicMuted(muted=muted):
                self.muted = muted
                if self.link is not None:
                    self.link.uplink.muted = muted
            case OpenMic():
                if self.link is not None:
                    self.link.uplink.open_gate()
                self.control.ready()
            case Metric():
                self.report.metrics.append(action)
                self._log_local(
                    {"type": "voicecoach.metric", "name": action.name, "value": action.value, **action.data}
                )
            case TranscriptChanged(message=m, final=True) if m.text.strip() or m.generated_text:
                self._keep(m)
            case Interrupted(why=why):
                self.journal.interrupt(why)
            case EndSession(reason=reason, fatal=fatal):
                if fatal:
                    self.report.end_error = SessionError(f"the server ended the session: {reason}")
                self.control.stop(reason)
            case Reconnect(reason=reason):
                self.control.renew(reason)
            case Quit():
                self.control.stop("quit")
            case StatusChanged() | TranscriptChanged() | Notice() | Reconnecting() | LinkUp():
                pass
            case _:
                assert_never(action)

    def _keep(self, m: Message) -> None:
        """A finished transcript item: into the journal once (first final wins), and into the report.

        Each item carries when it was said (wall clock), so that the session file reads in spoken order even
        though the two channels finish their transcripts out of order."""
        text = m.text.strip()
        said = time.time() - (self.clock() - m.started_at)
        if m.role == "coach" and m.generated_text is not None:
            self._keep_cut(m, text, said)
            return
        if m.role == "coach":
            kept = self.journal.hint(m.item_id, m.tier or "", text, interrupted=m.interrupted, started_at=said)
            if kept:
                self._hint_lines[m.item_id] = len(self.report.transcript)
        else:
            speaker, label = JOURNAL_SPEAKERS[m.role], m.label
            kept = self.journal.utterance(m.item_id, text, speaker=speaker, started_at=said, label=label)
        if kept:
            self.report.transcript.append(f"{message_label(m)}: {text}")

    def _keep_cut(self, m: Message, text: str, said: float) -> None:
        """A hint cut short: kept (or amended) as the words played; its report line says so."""
        assert m.generated_text is not None
        kept = self.journal.hint_cut(
            m.item_id, m.tier or "", text, generated_text=m.generated_text, played_ms=m.played_ms or 0.0,
            trim=m.trim or "", started_at=said,
        )  # fmt: skip
        if not kept:
            return
        line = f"{message_label(m)}: {text} [interrupted]".replace(":  [", ": [")
        at = self._hint_lines.pop(m.item_id, None)
        if at is not None:
            self.report.transcript[at] = line
        else:
            self.report.transcript.append(line)

    def received(self, raw: str | bytes, now: float, channel: str | None = None) -> ServerEvent:
        """Parse one server message and log it; bad input becomes data (a MalformedEvent), never an exception.

        ``channel`` names a link other than the main one (``"them"``) in the events file."""
        data = decode_message(raw)
        if isinstance(data, MalformedEvent):
            event: ServerEvent = data
            record: dict[str, Any] = {"type": "voicecoach.malformed", "reason": data.reason, "raw": data.raw}
        else:
            event, record = parse_server_dict(data), data
        if self.events is not None:
            self.events.write("received", record, now, channel)
        return event

    def sent(self, wire: dict[str, Any], channel: str | None = None) -> None:
        """An event went out on a link by another way than :meth:`send` (a link's first ``session.update``)."""
        if self.events is not None:
            self.events.write("sent", wire, self.clock(), channel)

    def send(self, event: ce.ClientEvent) -> None:
        link = self.link
        if link is None:
            return
        wire = event.to_wire()
        try:
            text = link.send(wire)
        except TransportError as exc:
            self.view.show(Notice("error", str(exc)), self.clock())
            return
        if text:  # "" when the transport has no such event and dropped it (output_audio_buffer.clear on a socket)
            self.sent(wire)

    def _log_local(self, record: dict[str, Any]) -> None:
        if self.events is not None:
            self.events.write("local", record, self.clock())
