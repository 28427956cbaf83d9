"""The sans-I/O core of one Realtime call: client events and audio in, server events and audio actions out.

Call order (every method takes ``now``, a monotonic time in seconds, and returns outputs to carry out in
order; see :mod:`~voicecoach.server.outputs`)::

    session = RealtimeSession(config, now=..., unix_time=..., scenario=...)
    session.start(now)                      # → session.created (send it before anything else)
    session.receive_text(text, now)         # one data-channel message
    session.receive_audio(pcm, now)         # 48 kHz mono int16, any length (RTP gives 20 ms frames)
    session.tick(now)                       # pacing, transcription, expiry: call at next_deadline()
    session.speech_ready(response_id, pcm, now)          # answer to a Synthesize output
    session.audio_played(response_id, played_ms, now, finished=...)  # from the output track, per frame

What the session hears and says comes from its lines (:class:`~voicecoach.server.backend.SessionLines`): a
scenario's, given at once and scheduled on the session's clock, or a live backend's, which the driver makes
from the audio and reports back (answers to :class:`Transcribe` and :class:`Generate` outputs)::

    session.transcription_result(item_id, text, now)     # or transcription_failed(item_id, message, now)
    session.reply_sentence(response_id, text, pcm, now)  # audio replies, a sentence at a time
    session.reply_text(response_id, delta, now)          # text replies
    session.reply_end(response_id, usage, error, now)    # once per Generate (unless stopped)

``SessionOptions.transport`` says what the call runs on. ``"websocket"``: the model's audio goes out as
``response.output_audio.delta`` events (no :class:`PlayAudio`), there are no ``output_audio_buffer.*`` events,
``output_audio_buffer.clear`` is not an accepted client event, and a barge-in cancels without truncating
(the client plays the audio, so only the client knows what was heard: realtime-protocol.md §2.7).

A session whose ``type`` is ``"transcription"`` (``?intent=transcription``, next-wave.md §2.1) turns speech
into transcripts only: VAD turns are committed and transcribed from the scenario's ``them_utterances``; it
never makes a response (``response.*`` client events are refused, see TRANSCRIPTION_REFUSED_EVENTS).

Client mistakes become ``error`` events (never an exception, never a closed channel); after
``session_max_seconds`` the session sends ``session_expired`` and a :class:`CloseCall`, and ignores
everything afterwards. Event handlers live in :mod:`~voicecoach.server.handlers`.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..audio.frames import Pcm
from .backend import ReplyUsage, SessionLines, lines_of
from .catalog import usage_kind
from .codec import InputDecoder
from .conversation import Conversation, Item
from .handlers import HANDLERS, build_response
from .ids import IdFactory
from .input_audio import InputAudio
from .live_response import LiveResponse
from .outputs import ClearAudio, CloseCall, Output, SendEvent, Transcribe
from .responses import Response
from .scenario import Scenario, ScenarioCursor
from .schema import WireError, invalid_value
from .usage import PromptCache, RateLimiter, transcription_usage
from .validation import EVENTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionOptions:
    session_max_seconds: float = 3600.0
    generation_speed: float = 4.0  # how many times faster than real time a response is generated
    response_latency: float = 0.12  # response.created → first output
    transcription_latency: float = 0.15  # commit → first transcription delta
    transcription_word_interval: float = 0.02
    input_buffer_seconds: float = 120.0
    transport: Literal["webrtc", "websocket"] = "webrtc"


# Client event types OpenAI accepts only on WebRTC/SIP connections (realtime-protocol.md §3): on a WebSocket
# they are unknown types, answered like any other (invalid_value on 'type', listing the accepted ones).
WEBRTC_ONLY_EVENTS = frozenset({"output_audio_buffer.clear"})
# Client event types a transcription-only session (session.type "transcription") does not accept: it has no
# model to respond and no output. UNCONFIRMED: realtime-protocol.md does not record the real answer to
# response.create there; the closest documented error is the one for a type the connection does not accept
# (§8: invalid_value on 'type', listing the supported types), which is what these get.
TRANSCRIPTION_REFUSED_EVENTS = frozenset(
    {
        "response.create",
        "response.cancel",
        "conversation.item.create",
        "conversation.item.truncate",
        "output_audio_buffer.clear",
    }
)


class RealtimeSession:
    def __init__(
        self,
        session: dict[str, Any],
        *,
        now: float,
        unix_time: float,
        scenario: Scenario | ScenarioCursor | SessionLines,
        options: SessionOptions | None = None,
        ids: IdFactory | None = None,
    ) -> None:
        """``scenario``: what the session hears and says (a scenario, a cursor shared across calls, or a
        backend's lines)."""
        self.options = options or SessionOptions()
        self.ids = ids or IdFactory()
        self.session = copy.deepcopy(session)
        self.session["expires_at"] = int(unix_time + self.options.session_max_seconds)
        self.lines = lines_of(scenario)
        self.conversation = Conversation(self.ids.conversation())
        self.input = InputAudio(
            self.turn_detection, self.options.input_buffer_seconds, detector=self.lines.turn_detector
        )
        self._transcribing: dict[str, tuple[Item, str]] = {}  # item id → (item, usage kind), live lines only
        self.append_decoder = InputDecoder()
        # A session's type never changes (session.update cannot switch it), so neither does what it accepts.
        self.transcription_only = self.session["type"] == "transcription"
        refused = TRANSCRIPTION_REFUSED_EVENTS if self.transcription_only else frozenset()
        if self.options.transport != "webrtc":
            refused |= WEBRTC_ONLY_EVENTS
        self.event_types = tuple(k for k in EVENTS if k not in refused)
        self.limiter = RateLimiter()
        self.responses: list[Response] = []  # unsettled ones: generating, or with audio still to report
        self.prompt_cache = PromptCache()  # the inputs of its latest responses: what a new one finds cached
        self.assistant_audio_produced = False
        self.last_audio_response: str | None = None
        self.pending_item: str | None = None  # user item id of the VAD turn in progress
        self.turn_start_ms = 0
        self.closed = False
        self._expires = now + self.options.session_max_seconds
        self._timers: list[tuple[float, int, Callable[[], list[Output]]]] = []
        self._seq = itertools.count()

    # --- helpers for the handlers ---------------------------------------------------------------------------

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        td: dict[str, Any] | None = self.session["audio"]["input"]["turn_detection"]
        return td

    def event(self, kind: str, **fields: Any) -> SendEvent:
        event_id = self.ids.buffer_event() if kind.startswith("output_audio_buffer.") else self.ids.event()
        return SendEvent({"type": kind, "event_id": event_id, **fields})

    def at(self, when: float, action: Callable[[], list[Output]]) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), action))

    def active_in_band(self) -> Response | None:
        return next((r for r in self.responses if r.in_band and r.active), None)

    def find_response(self, response_id: str) -> Response | None:
        return next((r for r in self.responses if r.id == response_id), None)

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self, now: float) -> list[Output]:
        """``session.created``: the first event of the call."""
        return [self.event("session.created", session=copy.deepcopy(self.session))]

    def receive_text(self, text: str | bytes, now: float) -> list[Output]:
        if self.closed:
            return []
        out = self.tick(now)
        if self.closed:
            return out
        client_event_id: str | None = None
        try:
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise WireError("invalid_json", f"Invalid event: failed to parse JSON value. {exc}.") from exc
            if not isinstance(data, dict) or "type" not in data:
                raise WireError("invalid_event", "The 'type' field is missing.")
            if isinstance(data.get("event_id"), str):
                client_event_id = data["event_id"]
            kind = data["type"]
            if not isinstance(kind, str) or kind not in self.event_types:
                raise invalid_value("type", kind, self.event_types)
            checked = EVENTS[kind].check(data, "")
            out += HANDLERS[kind](self, checked, now)
        except WireError as exc:
            log.debug("client error %s (%s): %s", exc.code, exc.param, exc.message)
            out.append(self.event("error", error=exc.to_error(client_event_id)))
        return out + self._after(now)

    def receive_audio(self, pcm: Pcm, now: float) -> list[Output]:
        if self.closed:
            return []
        out = self.tick(now)
        if self.closed:
            return out
        for vad in self.input.push(pcm):
            if vad.kind == "started":
                out += self.speech_started(vad.ms, now)
            else:
                out += self.speech_stopped(vad.ms, now)
        return out + self._after(now)

    def tick(self, now: float) -> list[Output]:
        if self.closed:
            return []
        if now >= self._expires:
            return self._expire()
        out: list[Output] = []
        while self._timers and self._timers[0][0] <= now:
            out += heapq.heappop(self._timers)[2]()
        for response in list(self.responses):
            out += response.tick(now, self.limiter)
        return out + self._after(now)

    def next_deadline(self) -> float | None:
        """The next time :meth:`tick` has something to do: the driver sleeps until then, or until new input.

        None once the session is closed (nothing is ever due again)."""
        if self.closed:
            return None
        times = [self._expires] + [t[0] for t in self._timers[:1]]
        times += [d for r in self.responses if (d := r.next_due()) is not None]
        return min(times)

    def speech_ready(self, response_id: str, pcm: Pcm, now: float) -> list[Output]:
        response = self.find_response(response_id)
        if response is None or self.closed:
            return []
        response.speech_ready(pcm)
        return self.tick(now)

    def audio_played(self, response_id: str, played_ms: int, now: float, *, finished: bool) -> list[Output]:
        """The output track sent a frame with audio of ``response_id`` (``played_ms`` so far in total);
        ``finished``: no more of it is queued."""
        response = self.find_response(response_id)
        if response is None or self.closed:
            return []
        return response.audio_played(played_ms, finished) + self._after(now)

    def _after(self, now: float) -> list[Output]:
        for response in self.responses:
            if response.samples_pushed:
                self.assistant_audio_produced = True
                self.last_audio_response = response.id
        self.responses = [r for r in self.responses if not r.settled]
        return []

    def _expire(self) -> list[Output]:
        self.closed = True
        minutes = f"{self.options.session_max_seconds / 60:g}"
        error = WireError("session_expired", f"Your session hit the maximum duration of {minutes} minutes.")
        log.debug("session expired after %s minutes", minutes)
        return [self.event("error", error=error.to_error(None)), CloseCall("session_expired")]

    # --- turns ----------------------------------------------------------------------------------------------

    def speech_started(self, audio_start_ms: int, now: float) -> list[Output]:
        self.pending_item = self.ids.item()
        self.turn_start_ms = audio_start_ms
        out: list[Output] = [
            self.event("input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=self.pending_item)
        ]
        td = self.turn_detection
        if td is not None and td.get("interrupt_response", True) and not self.transcription_only:
            out += self.barge_in(now)
        return out

    def speech_stopped(self, audio_end_ms: int, now: float) -> list[Output]:
        item_id = self.pending_item or self.ids.item()
        self.pending_item = None
        out: list[Output] = [
            self.event("input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id)
        ]
        out += self.commit(self.input.take(self.turn_start_ms, audio_end_ms), item_id, now)
        td = self.turn_detection
        if td is not None and td.get("create_response", True) and not self.transcription_only:
            if self.active_in_band() is None:
                out += self.start_response({}, now)
            else:
                log.debug("turn ended while a response is active: no automatic response")
        return out

    def commit(self, pcm: Pcm, item_id: str, now: float) -> list[Output]:
        """Turn committed audio into a user item: committed → item added/done, then transcription (async)."""
        item = Item(item_id, "message", role="user", content=[{"type": "input_audio", "transcript": None}])
        item.audio, item.audio_samples = pcm, int(pcm.size)
        previous = self.conversation.add(item)
        out: list[Output] = [
            self.event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id),
            self.event("conversation.item.added", previous_item_id=previous, item=item.wire()),
            self.event("conversation.item.done", previous_item_id=previous, item=item.wire()),
        ]
        # Transcription sessions hear the other side of the call: their transcripts are the scenario's own list.
        text = self.lines.heard(them=self.transcription_only)
        transcription = self.session["audio"]["input"]["transcription"]
        if transcription is not None:
            kind = usage_kind(transcription["model"])
            if text is None:  # a live backend hears the audio itself, off the core
                self._transcribing[item.id] = (item, kind)
                out.append(Transcribe(item.id, pcm, transcription.get("language"), transcription.get("prompt")))
            else:
                self._schedule_transcription(item, text, kind, now)
        return out

    def transcription_result(self, item_id: str, text: str, now: float) -> list[Output]:
        """A live backend's transcript of ``item_id``: its words as deltas, then ``completed`` (the shapes of
        the scripted path, sent at once: the words are all known when the recogniser is done)."""
        entry = self._transcribing.pop(item_id, None)
        if entry is None or self.closed:
            return []
        item, kind = entry
        words = re.findall(r"\s*\S+", text) or [text]
        out: list[Output] = [self._delta_event(item_id, word) for word in words]
        item.content[0]["transcript"] = text
        out.append(self._completed(item, text, kind))
        return out + self._after(now)

    def transcription_failed(self, item_id: str, message: str, now: float) -> list[Output]:
        """The backend could not transcribe ``item_id``: ``…input_audio_transcription.failed`` (§4.3 shape)."""
        if self._transcribing.pop(item_id, None) is None or self.closed:
            return []
        error = {"type": "server_error", "code": "transcription_failed", "message": message, "param": None}
        return [
            self.event(
                "conversation.item.input_audio_transcription.failed", item_id=item_id, content_index=0, error=error
            )
        ]

    # --- a live backend's replies ---------------------------------------------------------------------------

    def _live(self, response_id: str) -> LiveResponse | None:
        response = self.find_response(response_id)
        return response if isinstance(response, LiveResponse) and not self.closed else None

    def reply_sentence(self, response_id: str, text: str, pcm: Pcm, now: float) -> list[Output]:
        response = self._live(response_id)
        if response is None:
            return []
        return response.reply_sentence(text, pcm, now, self.limiter) + self._after(now)

    def reply_text(self, response_id: str, delta: str, now: float) -> list[Output]:
        response = self._live(response_id)
        if response is None:
            return []
        return response.reply_text(delta, now, self.limiter) + self._after(now)

    def reply_end(self, response_id: str, usage: ReplyUsage | None, error: str | None, now: float) -> list[Output]:
        response = self._live(response_id)
        if response is None:
            return []
        return response.reply_end(usage, error, now, self.limiter) + self._after(now)

    def _schedule_transcription(self, item: Item, text: str, usage: str, now: float) -> None:
        words = re.findall(r"\s*\S+", text) or [text]
        when = now + self.options.transcription_latency
        step = self.options.transcription_word_interval
        for index, word in enumerate(words):
            self.at(when + index * step, self._transcription_delta(item.id, word))

        def completed() -> list[Output]:
            item.content[0]["transcript"] = text
            return [self._completed(item, text, usage)]

        self.at(when + len(words) * step, completed)

    def _completed(self, item: Item, text: str, usage: str) -> SendEvent:
        return self.event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item.id,
            content_index=0,
            transcript=text,
            usage=transcription_usage(item.audio_samples, text, usage),
        )

    def _transcription_delta(self, item_id: str, word: str) -> Callable[[], list[Output]]:
        return lambda: [self._delta_event(item_id, word)]

    def _delta_event(self, item_id: str, word: str) -> SendEvent:
        return self.event(
            "conversation.item.input_audio_transcription.delta",
            item_id=item_id,
            content_index=0,
            delta=word,
            obfuscation=self.ids.obfuscation(),
        )

    # --- the output buffer ----------------------------------------------------------------------------------

    def barge_in(self, now: float) -> list[Output]:
        """User speech while the model talks (``interrupt_response``): §6.4 cases (a), (b) and (c)."""
        out: list[Output] = []
        cut = [r for r in self.responses if r.audio_outstanding]
        if cut:
            out += [ClearAudio(), self.event("output_audio_buffer.cleared", response_id=cut[0].id)]
            for response in cut:
                response.clear_audio()
        active = self.active_in_band()
        if active is not None:
            out += active.cancel("turn_detected", now, self.limiter)
        out += self._truncate_cut(cut)
        return out

    def clear_output(self, now: float) -> list[Output]:
        """``output_audio_buffer.clear``: silence now, ``cleared`` naming the response that was playing."""
        cut = [r for r in self.responses if r.audio_outstanding]
        target = cut[0].id if cut else self.last_audio_response
        if target is None:
            return [ClearAudio()]
        out: list[Output] = [ClearAudio(), self.event("output_audio_buffer.cleared", response_id=target)]
        for response in cut:
            response.clear_audio()
        return out + self._truncate_cut([r for r in cut if not r.active])

    def _truncate_cut(self, cut: list[Response]) -> list[Output]:
        out: list[Output] = []
        for response in cut:
            item = response.item
            if response.in_band and item is not None and self.conversation.get(item.id) is not None:
                end_ms = response.truncate_to_played()
                out.append(
                    self.event("conversation.item.truncated", item_id=item.id, content_index=0, audio_end_ms=end_ms)
                )
        return out

    def start_response(self, params: dict[str, Any], now: float) -> list[Output]:
        response = build_response(self, params, now)
        self.responses.append(response)
        return response.created() + response.tick(now, self.limiter)
