"""The coach: a pure state machine from server events and user intents to actions.

``handle(event, now)``, ``handle_them(event, now)``, ``command(intent, now)``, ``playback(sounding, now)`` and
``tick(now)`` each return the list of :mod:`~voicecoach.coach.actions` for the runner to execute, in order. No
I/O, no clock: ``now`` is a monotonic time in seconds supplied by the caller. Call order: ``connect(now)`` before
each main link's first event, ``disconnected(now, reason)`` when it is gone, ``close(now)`` at the end; after
every call, sleep until ``next_deadline()`` (or the next event) and then call ``tick(now)`` (:mod:`.timing`).

Two links: the main one (``handle``: the microphone, "you") and the other side's transcription-only one
(``handle_them``: "them"). ``channel_started(channel, epoch)`` gives each new session's audio epoch, so turns
interleave as spoken; ``them_disconnected(now, reason)`` when that link is gone (see :mod:`.speakers`).

Listening is silent: the session runs ``server_vad`` with ``create_response: false`` so the model never
answers on its own. What a hint sends is in :mod:`.hints`: the instructions, the context (``context_text``,
the person's documents) and the transcript window, stable part first so that the server's prompt cache serves
everything but the window. Once the call's audio is captured (``them_capture=True``, or the "them" link's first
``channel_started``/event), the instructions also say who is who; that stays for the rest of the run, so that a
"them" link that drops for a while does not change every hint's cached prefix twice.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import assert_never

from ..protocol import server_events as se
from .actions import (
    Action,
    EndSession,
    Intent,
    Metric,
    Notice,
    OpenMic,
    Quit,
    Reconnect,
    Send,
    TranscriptChanged,
)
from .conversation import Conversation
from .cost import Channel, CostMeter
from .hint_flow import HintFlow
from .hints import Hints, Prompt, carry_over, release
from .listen import Heard, Listener
from .server_errors import error_actions
from .settings import CoachSettings
from .speakers import Speakers
from .state import Move, State
from .timing import ROLLOVER_REASON, Deadlines, TimingSettings, earliest
from .usage import Prices, UsageTotals, prices_for

log = logging.getLogger(__name__)


class Coach(HintFlow):
    def __init__(
        self,
        settings: CoachSettings | None = None,
        *,
        model: str = "gpt-realtime-1.5",
        timing: TimingSettings | None = None,
        transcription_models: dict[Channel, str] | None = None,
        context_text: str = "",
        them_capture: bool = False,
    ) -> None:
        """``context_text``: the person's documents, sent before the window with every hint (``Context.text``).
        ``them_capture``: the runner has a source for the call's audio (a "them" link will run)."""
        self.settings = settings or CoachSettings()
        self.timing = timing or TimingSettings()
        self.state = State.DISCONNECTED
        self.conversation = Conversation()
        self.usage = UsageTotals()  # the hints' responses; ``cost`` adds each channel's transcription
        self.cost = CostMeter(responses=self.usage)
        for channel, transcriber in (transcription_models or {}).items():
            self.cost.transcription[channel].model = transcriber
        self.speakers = Speakers(self.conversation, self.cost)
        self.prices: Prices = prices_for(model)
        self.user_muted = False
        self._hints = Hints(Prompt(context_text=context_text, them_captured=them_capture))
        self.sessions = 0  # how many times we connected; > 1 means the context must be carried over
        self._server_items: set[str] = set()  # user items that exist in the current server session
        self._server_tracks_playback = False  # seen output_audio_buffer.* from this server
        self._clocks = Deadlines(self.timing)
        self.reconfigure(self.settings)

    def reconfigure(self, settings: CoachSettings, context_text: str | None = None) -> None:
        """Apply new settings (phrases, windows, durations, labels, instructions) and, unless None, a new context,
        from the next hint on. Raises ValueError for bad phrases (nothing is changed then)."""
        self._listener = Listener(settings)
        self.settings = settings
        self.speakers.them_label = settings.them_label
        if context_text is not None:
            self.context_text = context_text

    @property
    def context_text(self) -> str:
        """The context every hint carries ("" for none); setting it applies from the next hint on."""
        return self._hints.prompt.context_text

    @context_text.setter
    def context_text(self, text: str) -> None:
        self._hints.prompt = replace(self._hints.prompt, context_text=text)

    @property
    def them_captured(self) -> bool:
        """The call's audio is (or was, this run) transcribed: the hints' instructions say who is who."""
        return self._hints.prompt.them_captured

    # --- lifecycle ------------------------------------------------------------------------------------

    def connect(self, now: float) -> list[Action]:
        """A (new) link is being set up; the first call starts ``duration_seconds`` (it runs on through reconnects)."""
        self._clocks.duration.start(now)
        self.sessions += 1
        self._server_items.clear()
        self._clocks.link_closed()  # the rollover is re-armed by this link's session.updated
        self.speakers.clock.started("you", None)  # a new session's audio counts from 0: channel_started again
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
        self.speakers.guard.cancel_held()  # a trigger waiting for the other side cannot be asked for now
        return [*actions, Notice("warning", f"disconnected: {reason}")]

    def close(self, now: float) -> list[Action]:
        return [*self._cut_short(now), *self._move(Move.CLOSE)]  # a hint still playing is kept as heard

    @property
    def busy(self) -> bool:
        """A hint is asked for, generating or playing."""
        return bool(self._hints)

    @property
    def quiet(self) -> bool:
        """No hint in flight and no user turn awaiting its transcript: a link may close without losing either."""
        return not self._hints and not self._clocks.open_turns

    @property
    def them_quiet(self) -> bool:
        """No turn of the other side awaits its transcript: the "them" link may close (roll over) losing none."""
        return self.speakers.guard.them_open == 0

    @property
    def cost_usd(self) -> float:
        """The run's estimated cost: hints plus both channels' transcription (``cost.split()`` has the parts)."""
        return self.cost.total_usd

    def channel_started(self, channel: Channel, epoch: float | None) -> None:
        """A link's new session takes audio: its first sample was captured at ``epoch`` (monotonic seconds, the
        clock of ``now``; None: unknown, turns are then placed by arrival). Call it again after each reconnect."""
        self.speakers.clock.started(channel, epoch)
        if channel == "them":
            self._them_heard()

    def handle_them(self, event: se.ServerEvent, now: float) -> list[Action]:
        """An event of the other side's link. It never fires or stops a hint; it may settle a held trigger."""
        self._them_heard()
        speaking = {h.response_id for h in self._hints if h.response_id is not None}
        return [*self.speakers.them(event, now, speaking), *self._release_held(now)]

    def them_disconnected(self, now: float, reason: str) -> list[Action]:
        return [*self.speakers.them_lost(now, reason), *self._release_held(now)]

    # --- deadlines ------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do (maybe already past), or None; ask again after every call."""
        held = self.speakers.guard.deadline()
        return earliest(self._clocks.next(quiet=self.quiet, hint_deadline=self._hints.deadline()), held)

    def tick(self, now: float) -> list[Action]:
        """Act on the deadlines that have come: drop silent hints, end playback after the hang-over, then end
        the run (``--duration``) or roll over to a fresh session (:class:`Reconnect`)."""
        actions, hint = [*self._drop_stale(now), *self._release_held(now)], self._hints.audible
        quiet_again = self._clocks.hangover.fire(now)
        if quiet_again and not self._server_tracks_playback and hint and not hint.generating:
            actions += self._audio_finished(hint, now) if hint.audio_started_at is not None else []
        if quiet_again and self.settings.mute_mic_while_speaking:
            actions += self._mic_actions()  # the fallback mute lifts only now (hint_flow._mic_actions)
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
        """An event of the main link (the microphone's)."""
        self._clocks.track_turn(event)
        self._track_speech(event)  # before the dispatch: a transcript delta's anchor is the text before it
        placed = self.speakers.mic(event, now)  # before the dispatch: a turn goes where it was spoken
        return [*self._drop_stale(now), *self._dispatch(event, now), *placed]

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

    def command(self, intent: Intent, now: float, source: str = "key") -> list[Action]:
        """What ``intent`` does now; ``source`` ("key", "ctl", "hotkey") names the asker in an interrupt's record."""
        match intent:
            case Intent.QUICK_HINT | Intent.FULL_GUIDANCE:
                self.speakers.guard.cancel_held()  # the key asks now: a held phrase must not ask again
                return self._ask("quick" if intent is Intent.QUICK_HINT else "full", now)
            case Intent.INTERRUPT:
                return self._interrupt(now, source)
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
                return [*self._cut_short(now), Quit()]  # what was playing is kept as what was heard
            case _:
                assert_never(intent)

    # --- internals ------------------------------------------------------------------------------------

    def _listen(self, item_id: str, delta: str, now: float) -> list[Action]:
        audible = self._hints.audible is not None
        return self._heard(self._listener.delta(item_id, delta, now, coach_audible=audible), now)

    def _listen_final(self, event: se.TranscriptionCompleted, now: float) -> list[Action]:
        audible = self._hints.audible is not None
        return self._heard(self._listener.final(event.item_id, event.transcript, now, coach_audible=audible), now)

    def _heard(self, heard: Heard | None, now: float) -> list[Action]:
        """A microphone phrase: stop, or ask unless the echo guard holds it or finds it is the other side's."""
        if heard is None:
            return []
        if heard.action == "interrupt":
            return self._interrupt(now, f"said {heard.phrase!r}")
        start, end = self.speakers.mic_span(heard.item_id, now)
        match self.speakers.guard.verdict(heard.phrase, start, end, now):
            case "echo":
                return [self._echo_notice(heard.phrase)]
            case "wait":
                self.speakers.guard.hold(heard.action, heard.phrase, heard.item_id, start, end, now)
                who = self.settings.them_label
                return [Notice("debug", f"holding {heard.phrase!r} until {who}'s transcript shows it is no echo")]
            case "clear":
                heard_in = heard.item_id if heard.streamed else None
                return self._ask(heard.action, now, said=heard.phrase, heard_in=heard_in)

    def _release_held(self, now: float) -> list[Action]:
        if not self.speakers.guard.held:  # the hot path: almost always nothing is held
            return []
        fire, echo = self.speakers.guard.release(now)
        actions: list[Action] = [self._echo_notice(h.phrase) for h in echo]
        for held in fire:
            actions += self._ask(held.tier, now, said=held.phrase)
        return actions

    def _them_heard(self) -> None:
        """The call's audio is captured: from the next hint on, the instructions say who is who (for good)."""
        if not self._hints.prompt.them_captured:
            self._hints.prompt = replace(self._hints.prompt, them_captured=True)

    def _echo_notice(self, phrase: str) -> Notice:
        who = self.settings.them_label
        text = f"ignored {phrase!r} from the microphone: {who} said it too (echo from loudspeakers?)"
        return Notice("info", text, {"phrase": phrase, "echo_window_s": self.speakers.guard.window_s})
