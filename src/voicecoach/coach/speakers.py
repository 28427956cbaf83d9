"""Both speakers of the call for the coach: where each turn goes in the transcript, the other side's events, the
channels' transcription cost, and the guards between the channels.

Pure: no I/O and no clock. The coach owns one :class:`Speakers` and calls:

- :meth:`Speakers.mic` with every event of the main link (the microphone, "you"): places the user's turn by the
  time it was spoken and prices its transcription. Triggers stay the coach's (:mod:`.phrases`).
- :meth:`Speakers.them` with every event of the "them" link (a transcription-only session): the other side's
  turns become ``"them"`` messages labelled ``them_label``. Nothing said there is matched against trigger or
  interrupt phrases: only the user fires. What it hears also feeds the echo guard, and an utterance that is the
  coach's own voice is dropped (:mod:`.echo_guard`).

Errors on the "them" link are notices only: they never end the run or renew the main link (the runner keeps
that link alive on its own).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import assert_never

from ..protocol import server_events as se
from .actions import Action, Level, Metric, Notice, TranscriptChanged
from .channels import SpokenClock
from .conversation import Conversation, Message
from .cost import Channel, CostMeter
from .echo_guard import ECHO_WINDOW_S, EchoGuard, own_voice
from .server_errors import BENIGN_ERRORS

log = logging.getLogger(__name__)

SELF_VOICE_LOOKBACK = 12  # recent messages searched for the hint a "them" utterance may echo


class Speakers:
    def __init__(self, conversation: Conversation, meter: CostMeter, them_label: str = "Them") -> None:
        self.conversation = conversation
        self.meter = meter
        self.them_label = them_label
        self.clock = SpokenClock()
        self.guard = EchoGuard()
        self.dropped_own_voice = 0  # "them" utterances dropped as the coach's own voice

    # --- the microphone's link ------------------------------------------------------------------------

    def mic(self, event: se.ServerEvent, now: float) -> list[Action]:
        """Placement and cost for a main-link event; [] for everything else (the coach handles the rest)."""
        match event:
            case se.SpeechStarted(item_id=item_id, audio_start_ms=ms):
                turn = self.clock.speech_started("you", item_id, ms, now)
                self.conversation.spoken("user", item_id, turn.start, now)
            case se.SpeechStopped(item_id=item_id, audio_end_ms=ms):
                self.clock.speech_stopped("you", item_id, ms, now)
            case se.TranscriptionCompleted():
                return self._priced("you", event)
            case _:
                pass
        return []

    def mic_span(self, item_id: str, now: float) -> tuple[float, float]:
        """The spoken interval of a microphone utterance (``now`` for what is unknown)."""
        turn = self.clock.turn("you", item_id)
        if turn is None:
            return now, now
        return turn.start, turn.end if turn.end is not None else now

    # --- the other side's link ------------------------------------------------------------------------

    def them(self, event: se.ServerEvent, now: float, speaking: Collection[str]) -> list[Action]:
        """One event of the "them" link. ``speaking``: response ids of the hints in flight (they may be heard)."""
        label = self.them_label
        match event:
            case se.SpeechStarted(item_id=item_id, audio_start_ms=ms):
                turn = self.clock.speech_started("them", item_id, ms, now)
                self._label(self.conversation.spoken("them", item_id, turn.start, now))
                self.guard.them_started(item_id, turn.start)
                return []
            case se.SpeechStopped(item_id=item_id, audio_end_ms=ms):
                if (stopped := self.clock.speech_stopped("them", item_id, ms, now)) is not None:
                    self.guard.them_stopped(item_id, stopped.end or now)
                return []
            case se.TranscriptionDelta(item_id=item_id, delta=delta):
                message = self._label(self.conversation.delta("them", item_id, delta, now))
                self.guard.them_text(item_id, message.text, now, done=False)
                # While the coach may be heard, a line is shown only once it is known not to be the coach.
                return [] if self._hints_near(item_id, now, speaking) else [TranscriptChanged(message, final=False)]
            case se.TranscriptionCompleted(item_id=item_id, transcript=transcript):
                message = self._label(self.conversation.completed("them", item_id, transcript, now))
                priced = self._priced("them", event)
                if own_voice(transcript, self._hints_near(item_id, now, speaking)):
                    return [*priced, *self._drop_own_voice(message)]
                self.guard.them_text(item_id, transcript, now, done=True)
                return [TranscriptChanged(message, final=True), *priced]
            case se.TranscriptionFailed(item_id=item_id):
                message = self._label(self.conversation.failed("them", item_id, now))
                self.guard.them_text(item_id, "", now, done=True)
                why = event.error.message if event.error else "unknown reason"
                failed = Notice("warning", f"{label} channel: transcription failed: {why}")
                return [TranscriptChanged(message, final=True), failed]
            case se.ErrorEvent(error=err):
                level: Level = "debug" if err.code in BENIGN_ERRORS else "error"
                return [Notice(level, f"{label} channel: server error ({err.code or err.type}): {err.message}")]
            case se.SessionUpdated():
                return [Notice("debug", f"{label} channel: session updated")]
            case se.SessionCreated():
                return [Notice("debug", f"{label} channel: session created")]
            case se.MalformedEvent():
                return [Notice("warning", f"{label} channel: ignored a malformed server event: {event.reason}")]
            case (
                se.ItemAdded()
                | se.ItemDone()
                | se.ItemDeleted()
                | se.BufferCommitted()
                | se.ItemTruncated()
                | se.RateLimitsUpdated()
                | se.ResponseCreated()
                | se.ResponseDone()
                | se.TranscriptDelta()
                | se.TranscriptDone()
                | se.OutputAudioBufferStarted()
                | se.OutputAudioBufferStopped()
                | se.OutputAudioBufferCleared()
                | se.UnknownEvent()
            ):
                return []  # a transcription session has no responses; its items are ordered by time, not by id
            case _:
                assert_never(event)

    def them_lost(self, now: float, reason: str) -> list[Action]:
        """The "them" link is gone: its unfinished turns end (nothing waits for them); the next link's audio
        starts a new timeline, so its epoch is unknown until :meth:`~SpokenClock.started` is called again."""
        self.guard.them_lost(now)
        self.clock.started("them", None)
        return [Notice("warning", f"{self.them_label} channel disconnected: {reason}")]

    # --- inside ---------------------------------------------------------------------------------------

    def _label(self, message: Message) -> Message:
        message.label = self.them_label
        return message

    def _priced(self, channel: Channel, event: se.TranscriptionCompleted) -> list[Action]:
        usage = (event.model_extra or {}).get("usage")
        turn = self.clock.turn(channel, event.item_id)
        cost = self.meter.transcription[channel].add(usage, turn.speech_seconds if turn else None)
        if cost <= 0:
            return []
        return [Metric("transcription.cost_usd", cost, {"channel": channel, "total_usd": self.meter.total_usd})]

    def _hints_near(self, item_id: str, now: float, speaking: Collection[str]) -> list[str]:
        """The texts of hints that may be heard in this "them" turn: playing, or ended within the echo window
        of the turn's start."""
        turn = self.clock.turn("them", item_id)
        start = turn.start if turn is not None else now
        near: list[str] = []
        for message in self.conversation.recent(SELF_VOICE_LOOKBACK):
            if message.role != "coach" or not message.text.strip():
                continue
            ended = message.audible_until
            if message.item_id in speaking or (ended is not None and ended >= start - ECHO_WINDOW_S):
                near.append(message.text)
        return near

    def _drop_own_voice(self, message: Message) -> list[Action]:
        self.conversation.remove(message.item_id, "them")
        self.guard.forget(message.item_id)
        self.dropped_own_voice += 1
        text = " ".join(message.text.split())
        short = text if len(text) <= 60 else text[:57] + "..."
        # A blank final line retracts any partial line a view already shows for this turn.
        message.text = ""
        return [
            TranscriptChanged(message, final=True),
            Notice("debug", f"{self.them_label} channel: dropped the coach's own voice ({short!r})"),
        ]
