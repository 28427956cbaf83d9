"""A hint from its request to its silence: ask, claim the response, audio started and finished, interrupt.

Pure, like the rest of the coach: this is the part of :class:`~voicecoach.coach.coach.Coach` that moves hints
(``Coach`` inherits it; it has no state of its own: the attributes below are the coach's). Split out so each
module stays small; the call order and the contracts are the coach's docstring.

A hint cut short (interrupted, or still playing when the run ends) is kept as what was played (:meth:`_cut`,
:mod:`.played`), and every hint response is priced from what it generated until its usage comes
(:class:`~.cost.CostMeter`, :mod:`.estimate`).
"""

from __future__ import annotations

import logging

from ..protocol import client_events as ce
from ..protocol import server_events as se
from .actions import (
    Action,
    ExpectAudio,
    FlushPlayback,
    Interrupted,
    Metric,
    Notice,
    Send,
    SetMicMuted,
    StatusChanged,
    TranscriptChanged,
)
from .conversation import Conversation, Message
from .cost import CostMeter
from .estimate import request_size
from .hints import Hint, Hints, hint_request, release
from .labels import tier_label
from .played import AUDIO_MS_FIELD, Speech, played_part
from .settings import CoachSettings, Tier
from .state import Move, State, next_state
from .timing import Deadlines
from .usage import Prices, UsageTotals, response_metrics

log = logging.getLogger("voicecoach.coach.coach")  # one logger for the whole coach


class HintFlow:
    """The hint-moving half of the coach (see the module docstring)."""

    settings: CoachSettings
    state: State
    conversation: Conversation
    usage: UsageTotals
    cost: CostMeter
    prices: Prices
    user_muted: bool
    _hints: Hints
    _server_items: set[str]
    _server_tracks_playback: bool
    _clocks: Deadlines
    # The context block every hint request carries first (empty: none); it is priced apart in the summary.
    context_text: str = ""

    @property
    def live(self) -> bool:
        return self.state in (State.LISTENING, State.SPEAKING, State.MUTED)

    def _ask(self, tier: Tier, now: float, said: str | None = None, heard_in: str | None = None) -> list[Action]:
        """Request a hint now. ``heard_in``: the utterance whose streamed text fired it, still unfinished; the
        "requested" line then waits for that utterance's transcript line (the request does not wait)."""
        if not self.live:
            return [Notice("warning", "not connected yet: the hint was not requested")]
        actions: list[Action] = self._drop_stale(now)
        if self._hints:
            actions += self._interrupt(now, f"new {tier} request")
        hint = self._hints.new(tier, now, heard_in)
        event = hint_request(hint, self.conversation, self.settings, self._server_items)
        self.cost.asked(hint.number, request_size(event, self.context_text))
        why = f" (heard {said!r})" if said else ""
        requested = Notice("info", f"{tier_label(tier)} #{hint.number} requested{why}")
        if heard_in is None:
            return [*actions, Send(event, asked_at=now), requested]
        hint.held = requested
        return [*actions, Send(event, asked_at=now)]

    def _interrupt(self, now: float, why: str) -> list[Action]:
        hint = self._hints.speaking
        if hint is None:
            return [Notice("info", "nothing to interrupt")]
        actions: list[Action] = [*release(self._hints), FlushPlayback(asked_at=now)]
        if self._clocks.hangover.sounding:
            self._clocks.flushed_at = now  # the player's next "stopped" edge gives hint.interrupt_to_silence_ms
        for h in self._hints:
            h.interrupted = True
            if h.generating and h.response_id is not None:
                actions.append(Send(ce.ResponseCancel(response_id=h.response_id), asked_at=now))
        actions.append(Send(ce.OutputAudioBufferClear(), asked_at=now))
        for h in self._hints:
            if h.response_id is not None:
                actions.append(TranscriptChanged(self._cut(h, now), final=True))
        cut = tuple(h.number for h in self._hints)
        # Responses not yet created (no id) are cancelled when response.created arrives.
        self._hints.keep_unanswered()
        if self.state is State.SPEAKING:
            actions += self._move(Move.INTERRUPT)
        return [*actions, Interrupted(why, cut), *self._mic_actions()]

    def _on_response_created(self, event: se.ResponseCreated, now: float) -> list[Action]:
        hint = self._hints.claim(event.response)
        if hint is None:
            return []  # not ours (another client, or an in-band response we did not ask for)
        hint.response_id = event.response.id
        hint.generating = True
        hint.last_heard_at = now
        response = event.response
        if hint.interrupted:
            # Interrupted before the server even created it: cancel it now that it has an id.
            self._hints.remove(hint)
            return [*release([hint]), Send(ce.ResponseCancel(response_id=response.id), asked_at=now)]
        message = self.conversation.coach_started(response.id, hint.tier, now)
        self.cost.opened(hint.number, response.id, message, self.prices)
        return [ExpectAudio(response.id)]

    def _on_response_done(self, event: se.ResponseDone, now: float) -> list[Action]:
        response = event.response
        self.cost.settled(response)  # first: its estimate must not count in ``others`` next to its usage
        others = self.cost.total_usd - self.usage.cost_usd
        actions: list[Action] = [*response_metrics(response, self.usage, self.prices, others_usd=others)]
        hint = self._hints.for_response(response.id)
        if hint is not None:
            hint.generating = False
            if response.status == "failed":
                detail = (response.status_details or {}).get("error") or {}
                actions.append(Notice("error", f"the hint failed: {detail.get('message', 'no reason given')}"))
                actions += self._audio_finished(hint, now)
        return actions

    def _audio_started(self, hint: Hint | None, now: float, *, at_player: bool) -> list[Action]:
        """The server (``output_audio_buffer.started``) or the player (first audible sample) says the hint's
        audio began. Each source gives its own latency figure once; the first of the two starts Speaking."""
        if hint is None or hint.interrupted:
            return []
        tags = {"tier": hint.tier, "hint": hint.number}
        actions: list[Action] = []
        if at_player and hint.audible_at is None:
            hint.audible_at = now
            actions.append(Metric("hint.trigger_to_audible_ms", (now - hint.asked_at) * 1000, tags))
        elif not at_player and hint.server_audio_at is None:
            hint.server_audio_at = now
            actions.append(Metric("hint.trigger_to_server_audio_ms", (now - hint.asked_at) * 1000, tags))
        if hint.audio_started_at is not None:
            return actions
        hint.audio_started_at = now
        if self.state is State.LISTENING:
            actions += self._move(Move.SPEAK)
        return [*actions, *self._mic_actions()]

    def _audio_finished(self, hint: Hint | None, now: float) -> list[Action]:
        if hint is None or hint not in self._hints:
            return []
        self._hints.remove(hint)
        if hint.response_id is not None:
            self.conversation.coach_silent(hint.response_id, now)  # the self-voice check looks this far back
            self.cost.over(hint.response_id)
        actions = release([hint])
        if self.state is State.SPEAKING and self._hints.speaking is None:
            actions += self._move(Move.DONE)
        return [*actions, *self._mic_actions()]

    def _cut(self, hint: Hint, now: float) -> Message:
        """Hint ``hint`` (created: it has a response id) is cut short now: its transcript line becomes the words
        that were played, and its response is priced at what it generated unless usage still comes.

        Played = from its first audible sample (the player's report) to now; a hint the player never sounded
        was not heard at all."""
        assert hint.response_id is not None
        response_id = hint.response_id
        played_ms = max(0.0, now - hint.audible_at) * 1000 if hint.audible_at is not None else 0.0
        message = self.conversation.coach_started(response_id, None, now)
        record = self.cost.hints.get(response_id)
        cut = played_part(message.text, played_ms, record.speech if record else Speech(), self.cost.rate.ms_per_char)
        message = self.conversation.coach_cut(response_id, cut.text, cut.played_ms, cut.trim, now)
        self.cost.over(response_id, played_ms)
        return message

    def _cut_short(self, now: float) -> list[Action]:
        """The run ends (quit, duration, end of input) with hints in flight: keep each as what was played."""
        actions = release(self._hints)
        for hint in self._hints:
            if hint.response_id is not None:
                actions.append(TranscriptChanged(self._cut(hint, now), final=True))
        self._hints.keep_unanswered()
        return actions

    def _track_speech(self, event: se.ServerEvent) -> None:
        """Follow a hint's speech as it arrives (call before the event is handled): where its transcript deltas
        meet its audio, when the transport says how much audio a delta carried (the WebSocket)."""
        match event:
            case se.TranscriptDelta(response_id=response_id):
                record = self.cost.hints.get(response_id)
                if record is not None and record.message.generated_text is None:
                    record.speech.transcript_delta(len(record.message.text))
            case se.UnknownEvent(type="response.output_audio.delta", raw=raw):
                record = self.cost.hints.get(str(raw.get("response_id")))
                ms = raw.get(AUDIO_MS_FIELD)
                if record is not None and isinstance(ms, int | float) and not isinstance(ms, bool) and ms < 1e9:
                    record.speech.audio_delta(float(ms))
            case _:
                pass

    def _drop_stale(self, now: float) -> list[Action]:
        stale = self._hints.drop_silent(now) if self._hints else []  # the hot path: most events find no hint
        for hint in stale:
            if hint.response_id is not None:
                self.cost.over(hint.response_id)  # nothing was heard; priced at what it generated until usage
        dropped = [Notice("warning", f"hint #{h.number} got no reply from the server; dropped it") for h in stale]
        return [*release(stale), *dropped]

    def _mic_actions(self) -> list[Action]:
        # Muted until the hint is done *and* the player has been quiet for the hang-over: the server's
        # output_audio_buffer.stopped comes before our jitter and playout buffers (and the room) are silent.
        hangover = self._clocks.hangover
        busy = self._hints.audible is not None or hangover.playing or hangover.sounding
        speaking = self.settings.mute_mic_while_speaking and busy
        return [SetMicMuted(self.user_muted or speaking)]

    def _move(self, move: Move) -> list[Action]:
        previous = self.state
        self.state = next_state(previous, move)  # an illegal move raises InvalidTransition: a bug in the caller
        if self.state is previous:
            return []
        log.debug("coach %s → %s (%s)", previous, self.state, move)
        return [StatusChanged(self.state, previous)]
