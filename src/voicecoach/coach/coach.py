"""The coach: a pure state machine from server events and user intents to actions.

``handle(event, now)``, ``command(intent, now)`` and ``playback(playing, now)`` each return the list of
:mod:`~voicecoach.coach.actions` for the runner to execute, in order. No I/O, no clock: ``now`` is a
monotonic time in seconds supplied by the caller. Call ``connect(now)`` before the first event.

Listening is silent: the session runs ``server_vad`` with ``create_response: false`` so the model never
answers on its own. A hint is an out-of-band ``response.create`` (``conversation: "none"``) whose ``input`` is
the last N transcript messages, so its cost is bounded by N and not by the meeting's length.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, assert_never

from ..protocol import client_events as ce
from ..protocol import server_events as se
from .actions import (
    Action,
    EndSession,
    ExpectAudio,
    FlushPlayback,
    Intent,
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
from .conversation import Conversation, Message, render_window
from .phrases import PhraseMatcher, TriggerDetector
from .settings import CoachSettings
from .state import Move, State, next_state
from .usage import Prices, UsageTotals, prices_for

log = logging.getLogger(__name__)

Tier = Literal["quick", "full"]
METADATA_KEY = "voicecoach_tier"
HINT_KEY = "voicecoach_hint"
# Errors the API sends for races that are harmless (§8): logged, never shown as failures.
BENIGN_ERRORS = frozenset({"response_cancel_not_active", "conversation_already_has_active_response"})
FATAL_ERRORS = frozenset({"invalid_api_key", "insufficient_quota"})
# The session is over but a new one can carry on (realtime-protocol.md §8: "reconnect with a fresh token").
RENEW_ERRORS = frozenset({"session_expired"})
# A hint request with no response.created after this long is considered lost.
PENDING_TIMEOUT_S = 10.0


@dataclass
class Hint:
    tier: Tier
    number: int
    asked_at: float
    sent_at: float
    response_id: str | None = None
    generating: bool = False  # between response.created and response.done: response.cancel is legal
    audio_started_at: float | None = None
    interrupted: bool = False
    last_heard_at: float = 0.0  # the last sign of life from the server for this hint (created, delta, audio)


class Coach:
    def __init__(self, settings: CoachSettings | None = None, *, model: str = "gpt-realtime-1.5") -> None:
        self.settings = settings or CoachSettings()
        self.state = State.DISCONNECTED
        self.conversation = Conversation()
        self.usage = UsageTotals()
        self.prices: Prices = prices_for(model)
        self.user_muted = False
        self._hints: list[Hint] = []  # requested, not yet finished playing; oldest first
        self._count = 0
        self.sessions = 0  # how many times we connected; > 1 means the context must be carried over
        self._server_items: set[str] = set()  # user items that exist in the current server session
        self._server_tracks_playback = False  # seen output_audio_buffer.* from this server
        self.reconfigure(self.settings)

    # --- configuration --------------------------------------------------------------------------------

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
        """A (new) session is being set up. From a live state this is a rollover to a fresh session."""
        self.sessions += 1
        self._server_items.clear()
        first = self.state is State.DISCONNECTED and self.sessions == 1
        return self._move(Move.CONNECT if first else Move.RECONNECT)

    def disconnected(self, now: float, reason: str) -> list[Action]:
        actions = self._move(Move.LOST) if self.state is not State.DISCONNECTED else []
        # A hint cut off by the lost link is finished, as interrupted: its text so far is kept, not dropped.
        for hint in self._hints:
            if hint.response_id is not None:
                message = self.conversation.coach_done(hint.response_id, None, now, interrupted=True)
                actions.append(TranscriptChanged(message, final=True))
        self._hints.clear()
        return [*actions, Notice("warning", f"disconnected: {reason}")]

    def close(self, now: float) -> list[Action]:
        return self._move(Move.CLOSE)

    @property
    def busy(self) -> bool:
        """A hint is asked for, generating or playing."""
        return bool(self._hints)

    @property
    def live(self) -> bool:
        return self.state in (State.LISTENING, State.SPEAKING, State.MUTED)

    # --- server events --------------------------------------------------------------------------------

    def handle(self, event: se.ServerEvent, now: float) -> list[Action]:
        stale = self._drop_stale(now) if self._hints else []
        return [*stale, *self._dispatch(event, now)] if stale else self._dispatch(event, now)

    def _dispatch(self, event: se.ServerEvent, now: float) -> list[Action]:
        match event:
            case se.SessionUpdated():
                if self.state is State.CONNECTING:
                    return [*self._move(Move.READY), *self._carry_over(), OpenMic(), *self._mic_actions()]
                return [Notice("debug", "session updated")]
            case se.SessionCreated():
                return [Notice("debug", "session created")]
            case se.ErrorEvent():
                return self._on_error(event)
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
                return [TranscriptChanged(message, final=True), *self._listen_final(event, now)]
            case se.TranscriptionFailed():
                self.conversation.user_failed(event.item_id, now)
                why = event.error.message if event.error else "unknown reason"
                return [Notice("warning", f"transcription failed: {why}")]
            case se.ResponseCreated():
                return self._on_response_created(event, now)
            case se.TranscriptDelta():
                hint = self._hint_for(event.response_id)
                if hint is None:
                    return []
                hint.last_heard_at = now
                message = self.conversation.coach_delta(event.response_id, event.delta, now)
                return [TranscriptChanged(message, final=False)]
            case se.TranscriptDone():
                hint = self._hint_for(event.response_id)
                if hint is None:
                    return []
                message = self.conversation.coach_done(event.response_id, event.words, now, hint.interrupted)
                return [TranscriptChanged(message, final=True)]
            case se.ResponseDone():
                return self._on_response_done(event, now)
            case se.OutputAudioBufferStarted():
                self._server_tracks_playback = True
                return self._audio_started(self._hint_for(event.response_id), now)
            case se.OutputAudioBufferStopped() | se.OutputAudioBufferCleared():
                self._server_tracks_playback = True
                return self._audio_finished(self._hint_for(event.response_id), now)
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

    def playback(self, playing: bool, now: float) -> list[Action]:
        """The local player started, or has been quiet for a while (the runner applies the hang-over).

        The first sound starts the latency clock whatever the server does. The end of a hint is taken from the
        local player only for servers that never send ``output_audio_buffer.*`` (WebRTC peers other than
        OpenAI's): pauses between sentences must not end a hint that "got it" should still be able to cut.
        """
        hint = self._audible_hint()
        if playing:
            return self._audio_started(hint, now)
        if (
            not self._server_tracks_playback
            and hint is not None
            and hint.audio_started_at is not None
            and not hint.generating
        ):
            return self._audio_finished(hint, now)
        return []

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
                if not self.user_muted and self._speaking_hint() is not None:
                    actions += self._move(Move.SPEAK)
                return [*actions, *self._mic_actions()]
            case Intent.QUIT:
                return [Quit()]
            case _:
                assert_never(intent)

    # --- internals ------------------------------------------------------------------------------------

    def _listen(self, item_id: str, delta: str, now: float) -> list[Action]:
        # Self-hearing guard: while the coach talks, the mic may carry its voice; only interrupts count then.
        if self._audible_hint() is not None:
            match = self._interrupts.feed(item_id, delta, now)
            return self._interrupt(now, f"said {match.phrase!r}") if match else []
        # Interrupt phrases are not fed while silent: "stop" said then must not use up the utterance's one
        # interrupt, in case the coach starts talking before the person finishes.
        match = self._triggers.feed(item_id, delta, now)
        return self._ask(_tier(match.action), now, said=match.phrase) if match else []

    def _listen_final(self, event: se.TranscriptionCompleted, now: float) -> list[Action]:
        if self._audible_hint() is not None:
            match = self._interrupts.complete(event.item_id, event.transcript, now)
            self._triggers.complete(event.item_id, "", now)
            return self._interrupt(now, f"said {match.phrase!r}") if match else []
        match = self._triggers.complete(event.item_id, event.transcript, now)
        return self._ask(_tier(match.action), now, said=match.phrase) if match else []

    def _ask(self, tier: Tier, now: float, said: str | None = None) -> list[Action]:
        if not self.live:
            return [Notice("warning", "not connected yet: the hint was not requested")]
        actions: list[Action] = self._drop_stale(now)
        if self._hints:
            actions += self._interrupt(now, f"new {tier} request")
        self._count += 1
        hint = Hint(tier=tier, number=self._count, asked_at=now, sent_at=now)
        self._hints.append(hint)
        event = self._hint_request(hint)
        label = "quick hint" if tier == "quick" else "full guidance"
        why = f" (heard {said!r})" if said else ""
        return [*actions, Send(event, asked_at=now), Notice("info", f"{label} #{hint.number} requested{why}")]

    def _hint_request(self, hint: Hint) -> ce.ResponseCreate:
        s = self.settings
        window = self.conversation.window(s.quick_window if hint.tier == "quick" else s.full_window)
        instructions = s.quick_instructions if hint.tier == "quick" else s.full_instructions
        return ce.ResponseCreate(
            event_id=f"vc_hint_{hint.number}",
            response=ce.ResponseParams(
                conversation="none",
                input=self._window_input(window),
                instructions=instructions,
                max_output_tokens=s.max_output_tokens(hint.tier),
                metadata={METADATA_KEY: hint.tier, HINT_KEY: str(hint.number)},
                output_modalities=["audio"],
            ),
        )

    def _window_input(self, window: list[Message]) -> list[ce.ResponseInput]:
        if self.settings.window_mode == "references":
            # User turns by reference (the model hears their audio: ~8x the price of text); coach turns, and
            # turns from an earlier session that the server no longer has, as text.
            items: list[ce.ResponseInput] = []
            for m in window:
                if m.role == "user" and m.item_id in self._server_items:
                    items.append(ce.ItemReference(id=m.item_id))
                elif m.role == "user":
                    items.append(ce.user_text(m.text))
                else:
                    items.append(ce.assistant_text(m.text))
            return items or [ce.user_text("(nothing has been said yet)")]
        text = render_window(window) or "(nothing has been said yet)"
        return [ce.user_text(f"Transcript of the conversation so far, most recent last:\n{text}")]

    def _interrupt(self, now: float, why: str) -> list[Action]:
        hint = self._speaking_hint()
        if hint is None:
            return [Notice("info", "nothing to interrupt")]
        actions: list[Action] = [FlushPlayback(asked_at=now)]
        for h in self._hints:
            h.interrupted = True
            if h.generating and h.response_id is not None:
                actions.append(Send(ce.ResponseCancel(response_id=h.response_id), asked_at=now))
        actions.append(Send(ce.OutputAudioBufferClear(), asked_at=now))
        for h in self._hints:
            if h.response_id is not None:
                message = self.conversation.coach_done(h.response_id, None, now, interrupted=True)
                actions.append(TranscriptChanged(message, final=True))
        # Responses not yet created (no id) are cancelled when response.created arrives.
        self._hints = [h for h in self._hints if h.response_id is None]
        if self.state is State.SPEAKING:
            actions += self._move(Move.INTERRUPT)
        actions += [Notice("info", f"interrupted ({why})", {"interrupt": why}), *self._mic_actions()]
        return actions

    def _on_response_created(self, event: se.ResponseCreated, now: float) -> list[Action]:
        hint = self._claim(event.response)
        if hint is None:
            return []  # not ours (another client, or an in-band response we did not ask for)
        hint.response_id = event.response.id
        hint.generating = True
        hint.last_heard_at = now
        response = event.response
        if hint.interrupted:
            # Interrupted before the server even created it: cancel it now that it has an id.
            self._hints.remove(hint)
            return [Send(ce.ResponseCancel(response_id=response.id), asked_at=now)]
        self.conversation.coach_started(response.id, hint.tier, now)
        return [ExpectAudio(response.id)]

    def _claim(self, response: se.Response) -> Hint | None:
        """The pending request this response answers. Ours carry ``voicecoach_hint`` metadata; a server that does
        not echo metadata gets its response matched to the oldest pending request."""
        pending = [h for h in self._hints if h.response_id is None]
        metadata = response.metadata or {}
        number, tier = metadata.get(HINT_KEY), metadata.get(METADATA_KEY)
        if number is not None:
            return next((h for h in pending if str(h.number) == number), None)
        if tier is not None:
            return next((h for h in pending if h.tier == tier), None)
        if metadata:
            return None
        return pending[0] if pending else None

    def _on_response_done(self, event: se.ResponseDone, now: float) -> list[Action]:
        response = event.response
        actions: list[Action] = []
        if response.usage is not None:
            cost = self.usage.add(response.usage.model_dump(), self.prices)
            actions.append(
                Metric(
                    "response.cost_usd",
                    cost,
                    {"response_id": response.id, "total_usd": self.usage.cost_usd, "status": response.status},
                )
            )
            actions.append(Metric("response.input_tokens", response.usage.input_tokens, {"response_id": response.id}))
        hint = self._hint_for(response.id)
        if hint is not None:
            hint.generating = False
            if response.status == "failed":
                detail = (response.status_details or {}).get("error") or {}
                actions.append(Notice("error", f"the hint failed: {detail.get('message', 'no reason given')}"))
                actions += self._audio_finished(hint, now)
        return actions

    def _audio_started(self, hint: Hint | None, now: float) -> list[Action]:
        if hint is None or hint.audio_started_at is not None or hint.interrupted:
            return []
        hint.audio_started_at = now
        actions: list[Action] = [
            Metric("hint.create_to_audio_ms", (now - hint.sent_at) * 1000, {"tier": hint.tier, "hint": hint.number})
        ]
        if self.state is State.LISTENING:
            actions += self._move(Move.SPEAK)
        return [*actions, *self._mic_actions()]

    def _audio_finished(self, hint: Hint | None, now: float) -> list[Action]:
        if hint is None or hint not in self._hints:
            return []
        self._hints.remove(hint)
        actions: list[Action] = []
        if self.state is State.SPEAKING and self._speaking_hint() is None:
            actions += self._move(Move.DONE)
        return [*actions, *self._mic_actions()]

    def _on_error(self, event: se.ErrorEvent) -> list[Action]:
        err = event.error
        if err.code in BENIGN_ERRORS:
            return [Notice("debug", f"server: {err.message}")]
        if err.code in RENEW_ERRORS:
            return [Notice("warning", f"server: {err.message}"), Reconnect(err.code or "session over")]
        if err.code in FATAL_ERRORS:
            return [Notice("error", f"server: {err.message}"), EndSession(err.code or "error", fatal=True)]
        return [Notice("error", f"server error ({err.code or err.type}): {err.message}")]

    def _carry_over(self) -> list[Action]:
        """On a new session after the first, replay a compact text history so hints keep their context.

        The hints themselves are built from the local transcript and need no replay; this gives the server's
        conversation the same context (for ``window_mode = "references"`` and any in-band use).
        """
        if self.sessions <= 1:
            return []
        history = render_window(self.conversation.window(self.settings.full_window))
        if not history:
            return []
        text = f"Conversation so far (carried over from the previous session), most recent last:\n{history}"
        item = ce.SystemMessage(content=[ce.InputText(text=text)])
        return [Send(ce.ConversationItemCreate(event_id=f"vc_history_{self.sessions}", item=item))]

    def _hint_for(self, response_id: str | None) -> Hint | None:
        for hint in self._hints:
            if response_id is not None and hint.response_id == response_id:
                return hint
        return None

    def _speaking_hint(self) -> Hint | None:
        """The oldest hint asked for and not finished playing (it may not exist on the server yet)."""
        return self._hints[0] if self._hints else None

    def _audible_hint(self) -> Hint | None:
        """A hint the server has created: it is generating or playing, so the mic may hear the coach."""
        return next((h for h in self._hints if h.response_id is not None), None)

    def _drop_stale(self, now: float) -> list[Action]:
        """Forget hints the server went silent on (never created, or created and then nothing: no delta, no
        audio), so a lost request or a stray response.created cannot block the coach forever."""
        stale = [
            h
            for h in self._hints
            if h.audio_started_at is None and now - max(h.sent_at, h.last_heard_at) > PENDING_TIMEOUT_S
        ]
        for h in stale:
            self._hints.remove(h)
        return [Notice("warning", f"hint #{h.number} got no reply from the server; dropped it") for h in stale]

    def _mic_actions(self) -> list[Action]:
        speaking = self.settings.mute_mic_while_speaking and self._audible_hint() is not None
        return [SetMicMuted(self.user_muted or speaking)]

    def _move(self, move: Move) -> list[Action]:
        previous = self.state
        self.state = next_state(previous, move)  # an illegal move raises InvalidTransition: a bug in the caller
        if self.state is previous:
            return []
        log.debug("coach %s → %s (%s)", previous, self.state, move)
        return [StatusChanged(self.state, previous)]


def _tier(action: str) -> Tier:
    return "quick" if action == "quick" else "full"
