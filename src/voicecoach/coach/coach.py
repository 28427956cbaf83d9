"""The coach: a pure state machine from server events and user intents to actions.

``handle(event, now)``, ``command(intent, now)``, ``playback(sounding, now)`` and ``tick(now)`` each return the
list of :mod:`~voicecoach.coach.actions` for the runner to execute, in order. No I/O, no clock: ``now`` is a
monotonic time in seconds supplied by the caller. Call order: ``connect(now)`` before each link's first event,
``disconnected(now, reason)`` when a link is gone, ``close(now)`` at the end; after every call, sleep until
``next_deadline()`` (or the next event) and then call ``tick(now)`` (the deadlines are in :mod:`.timing`).

Listening is silent: the session runs ``server_vad`` with ``create_response: false`` so the model never
answers on its own. What a hint sends is in :mod:`.hints`.
"""

from __future__ import annotations

import logging
from typing import assert_never

from ..protocol import client_events as ce
from ..protocol import server_events as se
from .actions import (
    Action,
    EndSession,
    ExpectAudio,
    FlushPlayback,
    Intent,
    Interrupted,
    Metric,
    Notice,
    OpenMic,
    Quit,
    Reconnect,
    Send,
    SetMicMuted,
    StatusChanged,
    TranscriptChanged,
)
from .conversation import Conversation
from .hints import Hint, Hints, carry_over, hint_request, release
from .labels import tier_label
from .phrases import PhraseMatcher, TriggerDetector
from .server_errors import error_actions
from .settings import CoachSettings, Tier
from .state import Move, State, next_state
from .timing import ROLLOVER_REASON, Deadlines, TimingSettings
from .usage import Prices, UsageTotals, prices_for, response_metrics

log = logging.getLogger(__name__)


class Coach:
    def __init__(
        self,
        settings: CoachSettings | None = None,
        *,
        model: str = "gpt-realtime-1.5",
        timing: TimingSettings | None = None,
    ) -> None:
        self.settings = settings or CoachSettings()
        self.timing = timing or TimingSettings()
        self.state = State.DISCONNECTED
        self.conversation = Conversation()
        self.usage = UsageTotals()
        self.prices: Prices = prices_for(model)
        self.user_muted = False
        self._hints = Hints()
        self.sessions = 0  # how many times we connected; > 1 means the context must be carried over
        self._server_items: set[str] = set()  # user items that exist in the current server session
        self._server_tracks_playback = False  # seen output_audio_buffer.* from this server
        self._clocks = Deadlines(self.timing)
        self.reconfigure(self.settings)

    def reconfigure(self, settings: CoachSettings) -> None:
        """Apply new settings (phrases, windows, durations) at once. Raises ValueError for bad phrases."""
        triggers = PhraseMatcher({"quick": settings.quick_phrases, "full": settings.full_phrases})
        interrupts = PhraseMatcher({"interrupt": settings.interrupt_phrases})
        self.settings = settings
        self._triggers = TriggerDetector(triggers, settings.cooldown_seconds)
        # Interrupts have no cooldown worth the name: "stop" twice in a row should both work.
        self._interrupts = TriggerDetector(interrupts, 0.3)

    # --- lifecycle ------------------------------------------------------------------------------------

    def connect(self, now: float) -> list[Action]:
        """A (new) link is being set up; the first call starts ``duration_seconds`` (it runs on through reconnects)."""
        self._clocks.duration.start(now)
        self.sessions += 1
        self._server_items.clear()
        self._clocks.link_closed()  # the rollover is re-armed by this link's session.updated
        first = self.state is State.DISCONNECTED and self.sessions == 1
        return self._move(Move.CONNECT if first else Move.RECONNECT)

    def disconnected(self, now: float, reason: str) -> list[Action]:
        actions = release(self._hints)
        actions += self._move(Move.LOST) if self.state is not State.DISCONNECTED else []
        # A hint cut off by the lost link is finished, as interrupted: its text so far is kept, not dropped.
        for hint in self._hints:
            if hint.response_id is not None:
                message = self.conversation.coach_done(hint.response_id, None, now, interrupted=True)
                actions.append(TranscriptChanged(message, final=True))
        self._hints.clear()
        self._clocks.link_closed()
        return [*actions, Notice("warning", f"disconnected: {reason}")]

    def close(self, now: float) -> list[Action]:
        return [*release(self._hints), *self._move(Move.CLOSE)]

    @property
    def busy(self) -> bool:
        """A hint is asked for, generating or playing."""
        return bool(self._hints)

    @property
    def quiet(self) -> bool:
        """No hint in flight and no user turn awaiting its transcript: a link may close without losing either."""
        return not self._hints and not self._clocks.open_turns

    @property
    def live(self) -> bool:
        return self.state in (State.LISTENING, State.SPEAKING, State.MUTED)

    # --- deadlines ------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do (maybe already past), or None; ask again after every call."""
        return self._clocks.next(quiet=self.quiet, hint_deadline=self._hints.deadline())

    def tick(self, now: float) -> list[Action]:
        """Act on the deadlines that have come: drop silent hints, end playback after the hang-over, then end
        the run (``--duration``) or roll over to a fresh session (:class:`Reconnect`)."""
        actions, hint = self._drop_stale(now), self._hints.audible
        if self._clocks.hangover.fire(now) and not self._server_tracks_playback and hint and not hint.generating:
            actions += self._audio_finished(hint, now) if hint.audio_started_at is not None else []
        if self._clocks.duration.fire(now):
            actions.append(EndSession(self._clocks.duration.reason))
        elif self._clocks.input_end.fire(now, self._clocks.idle(self.quiet)):
            actions.append(EndSession("the input file ended and its last words were handled"))
        elif self._clocks.rollover.fire(now, self.quiet):
            actions.append(Reconnect(ROLLOVER_REASON))
        return actions

    def input_ended(self, now: float) -> list[Action]:
        """The input file has no more audio: end the run once its last turn and hint are done (see timing)."""
        self._clocks.input_end.ended(now)
        return [Notice("info", "the input file has ended: finishing its last transcript and any hint, then stopping")]

    def playback(self, sounding: bool, now: float) -> list[Action]:
        """The local player started or stopped producing sound (raw edges; the hang-over is applied here).

        The first sound of a hint is what the person hears (``hint.trigger_to_audible_ms``) and starts Speaking
        whatever the server does. The end of a hint is taken from the local player only for servers that never
        send ``output_audio_buffer.*`` (WebRTC peers other than OpenAI's), after :data:`.timing.PLAYBACK_HANGOVER_S`
        of quiet (in :meth:`tick`): pauses between sentences must not end a hint that "got it" should still cut.
        """
        silenced = self._clocks.silenced(now) if not sounding else None
        actions: list[Action] = [] if silenced is None else [Metric("hint.interrupt_to_silence_ms", silenced)]
        # Every rising edge, not only the debounced start: the next hint may begin within the hang-over of the
        # last one (a new request cut it off). A hint already heard ignores it.
        self._clocks.hangover.edge(sounding, now)
        if sounding:
            actions += self._audio_started(self._hints.audible, now, at_player=True)
        return actions

    # --- server events --------------------------------------------------------------------------------

    def handle(self, event: se.ServerEvent, now: float) -> list[Action]:
        self._clocks.track_turn(event)
        return [*self._drop_stale(now), *self._dispatch(event, now)]

    def _dispatch(self, event: se.ServerEvent, now: float) -> list[Action]:
        match event:
            case se.SessionUpdated():
                if self.state is State.CONNECTING:
                    self._clocks.rollover.opened(now)
                    history = carry_over(self.conversation, self.settings, self.sessions)
                    replay: list[Action] = [Send(history)] if history is not None else []
                    return [*self._move(Move.READY), *replay, OpenMic(), *self._mic_actions()]
                return [Notice("debug", "session updated")]
            case se.SessionCreated():
                return [Notice("debug", "session created")]
            case se.ErrorEvent():
                return error_actions(event.error)
            case se.ItemAdded() | se.ItemDone():
                if event.item.role == "user":
                    self._server_items.add(event.item.id)
                    self.conversation.user_item(event.item.id, event.previous_item_id, now)
                return []
            case se.ItemDeleted():
                self.conversation.remove(event.item_id)
                return []
            case se.TranscriptionDelta():
                message = self.conversation.user_delta(event.item_id, event.delta, now)
                return [TranscriptChanged(message, final=False), *self._listen(event.item_id, event.delta, now)]
            case se.TranscriptionCompleted():
                message = self.conversation.user_completed(event.item_id, event.transcript, now)
                held = release(h for h in self._hints if h.heard_in == event.item_id)
                return [TranscriptChanged(message, final=True), *held, *self._listen_final(event, now)]
            case se.TranscriptionFailed():
                self.conversation.user_failed(event.item_id, now)
                why = event.error.message if event.error else "unknown reason"
                held = release(h for h in self._hints if h.heard_in == event.item_id)
                return [Notice("warning", f"transcription failed: {why}"), *held]
            case se.ResponseCreated():
                return self._on_response_created(event, now)
            case se.TranscriptDelta():
                hint = self._hints.for_response(event.response_id)
                if hint is None:
                    return []
                hint.last_heard_at = now
                message = self.conversation.coach_delta(event.response_id, event.delta, now)
                return [TranscriptChanged(message, final=False)]
            case se.TranscriptDone():
                hint = self._hints.for_response(event.response_id)
                if hint is None:
                    return []
                message = self.conversation.coach_done(event.response_id, event.words, now, hint.interrupted)
                return [*release([hint]), TranscriptChanged(message, final=True)]
            case se.ResponseDone():
                return self._on_response_done(event, now)
            case se.OutputAudioBufferStarted():
                # Only our own hint's event shows the server reports playback (WebRTC's does, a WebSocket never):
                # a stray one must not make the coach wait for a "stopped" that will not come.
                self._server_tracks_playback |= (hint := self._hints.for_response(event.response_id)) is not None
                return self._audio_started(hint, now, at_player=False)
            case se.OutputAudioBufferStopped() | se.OutputAudioBufferCleared():
                self._server_tracks_playback |= (hint := self._hints.for_response(event.response_id)) is not None
                return self._audio_finished(hint, now)
            case (
                se.SpeechStarted()
                | se.SpeechStopped()
                | se.BufferCommitted()
                | se.ItemTruncated()
                | se.RateLimitsUpdated()
                | se.UnknownEvent()
            ):
                return []
            case se.MalformedEvent():
                return [Notice("warning", f"ignored a malformed server event: {event.reason}")]
            case _:
                assert_never(event)

    # --- user intents ---------------------------------------------------------------------------------

    def command(self, intent: Intent, now: float) -> list[Action]:
        match intent:
            case Intent.QUICK_HINT | Intent.FULL_GUIDANCE:
                return self._ask("quick" if intent is Intent.QUICK_HINT else "full", now)
            case Intent.INTERRUPT:
                return self._interrupt(now, "key")
            case Intent.TOGGLE_MUTE:
                if not self.live:
                    return [Notice("info", "not connected: nothing to mute")]
                self.user_muted = not self.user_muted
                move = Move.MUTE if self.user_muted else Move.UNMUTE
                actions = self._move(move)
                if not self.user_muted and self._hints.speaking is not None:
                    actions += self._move(Move.SPEAK)
                return [*actions, *self._mic_actions()]
            case Intent.QUIT:
                return [Quit()]
            case _:
                assert_never(intent)

    # --- internals ------------------------------------------------------------------------------------

    def _listen(self, item_id: str, delta: str, now: float) -> list[Action]:
        # Self-hearing guard: while the coach talks, the mic may carry its voice; only interrupts count then.
        if self._hints.audible is not None:
            match = self._interrupts.feed(item_id, delta, now)
            return self._interrupt(now, f"said {match.phrase!r}") if match else []
        # Interrupt phrases are not fed while silent: "stop" said then must not use up the utterance's one
        # interrupt, in case the coach starts talking before the person finishes.
        match = self._triggers.feed(item_id, delta, now)
        return (
            self._ask("quick" if match.action == "quick" else "full", now, said=match.phrase, heard_in=item_id)
            if match
            else []
        )

    def _listen_final(self, event: se.TranscriptionCompleted, now: float) -> list[Action]:
        if self._hints.audible is not None:
            match = self._interrupts.complete(event.item_id, event.transcript, now)
            self._triggers.complete(event.item_id, "", now)
            return self._interrupt(now, f"said {match.phrase!r}") if match else []
        match = self._triggers.complete(event.item_id, event.transcript, now)
        return self._ask("quick" if match.action == "quick" else "full", now, said=match.phrase) if match else []

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
        actions: list[Action] = [*response_metrics(response, self.usage, self.prices)]
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
