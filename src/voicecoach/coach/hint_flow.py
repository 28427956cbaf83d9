"""A hint from its request to its silence: ask, claim the response, audio started and finished, interrupt.

Pure, like the rest of the coach: this is the part of :class:`~voicecoach.coach.coach.Coach` that moves hints
(``Coach`` inherits it; it has no state of its own: the attributes below are the coach's). Split out so each
module stays small; the call order and the contracts are the coach's docstring.
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
from .conversation import Conversation
from .cost import CostMeter
from .hints import Hint, Hints, hint_request, release
from .labels import tier_label
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
                message = self.conversation.coach_done(h.response_id, None, now, interrupted=True)
                actions.append(TranscriptChanged(message, final=True))
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
        self.conversation.coach_started(response.id, hint.tier, now)
        return [ExpectAudio(response.id)]

    def _on_response_done(self, event: se.ResponseDone, now: float) -> list[Action]:
        response = event.response
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
        actions = release([hint])
        if self.state is State.SPEAKING and self._hints.speaking is None:
            actions += self._move(Move.DONE)
        return [*actions, *self._mic_actions()]

    def _drop_stale(self, now: float) -> list[Action]:
        stale = self._hints.drop_silent(now) if self._hints else []  # the hot path: most events find no hint
        dropped = [Notice("warning", f"hint #{h.number} got no reply from the server; dropped it") for h in stale]
        return [*release(stale), *dropped]

    def _mic_actions(self) -> list[Action]:
        speaking = self.settings.mute_mic_while_speaking and self._hints.audible is not None
        return [SetMicMuted(self.user_muted or speaking)]

    def _move(self, move: Move) -> list[Action]:
        previous = self.state
        self.state = next_state(previous, move)  # an illegal move raises InvalidTransition: a bug in the caller
        if self.state is previous:
            return []
        log.debug("coach %s → %s (%s)", previous, self.state, move)
        return [StatusChanged(self.state, previous)]
