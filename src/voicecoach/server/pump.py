"""The loop that drives one :class:`RealtimeSession`, whatever the call runs on (WebRTC or WebSocket).

Everything that happens to a call (a client message, an input audio frame, a playback report, a rendered
voice, a fault-injection step) goes into one inbox, and a single pump task feeds the inbox to the session and
carries out its outputs in order. So the session is never re-entered, and every event is sent in the order it
was made. Between messages the pump sleeps until the session's :meth:`~RealtimeSession.next_deadline` (the
next timer, delta or expiry), so an idle call costs nothing: there is no fixed-interval polling.

Subclasses (:class:`~voicecoach.server.call.Call`, :class:`~voicecoach.server.websocket.WebSocketCall`) say
how an event is sent and how audio is played; they own the pump task and call :meth:`_pump` from it.

The backend's work (a voice to render, and with a live backend a turn to transcribe or a reply to generate) runs
in tasks owned here, never in the session: each reports back through the inbox, so the session sees it in order
with everything else. A reply's task is cancelled the moment the session says :class:`StopGenerating`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..audio.frames import Pcm
from ..errors import VoicecoachError
from .backend import Backend, ReplyUsage
from .outputs import (
    ClearAudio,
    CloseCall,
    Generate,
    Output,
    PlayAudio,
    SendEvent,
    StopGenerating,
    Synthesize,
    Transcribe,
)
from .session import RealtimeSession

log = logging.getLogger(__name__)

# A step run inside the pump with the session (fault injection: see faults.py); returns outputs to carry out.
PumpStep = Callable[[RealtimeSession, float], list[Output]]


@dataclass
class Message:
    # "text" | "audio" | "played" | "speech" | "step" | "end", and from a live backend:
    # "transcript" | "sentence" | "reply_text" | "reply_end"
    kind: str
    payload: Any = None


class _InboxSink:
    """A reply's reports, into the pump's inbox (the backend calls these on the loop)."""

    def __init__(self, inbox: asyncio.Queue[Message], response_id: str) -> None:
        self._inbox = inbox
        self._id = response_id

    def sentence(self, text: str, pcm: Pcm) -> None:
        self._inbox.put_nowait(Message("sentence", (self._id, text, pcm)))

    def text(self, delta: str) -> None:
        self._inbox.put_nowait(Message("reply_text", (self._id, delta)))


class SessionPump:
    """Introspection for tests: ``events_sent``, ``events_received``, ``closed`` and ``close_reason``."""

    transport = "webrtc"

    def __init__(self, call_id: str, session: RealtimeSession, *, backend: Backend, clock: Callable[[], float]) -> None:
        self.id = call_id
        self.session = session
        self.events_sent: list[dict[str, Any]] = []
        self.events_received: list[Any] = []
        self.closed = False
        self.close_reason = ""
        self._backend = backend
        self._clock = clock
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._voices: set[asyncio.Task[None]] = set()  # every backend task: voices, transcripts, replies
        self._replies: dict[str, asyncio.Task[None]] = {}  # response id → its reply, until it ends or is stopped
        self._runner: asyncio.Task[None] | None = None  # the connection's run(), started by the transport

    async def close(self, reason: str = "closed by the server") -> None:
        """End the connection (idempotent): cancel its tasks, then shut the transport down."""
        if not self.close_reason:
            self.close_reason = reason
        self._closing()
        runner = self._runner
        if runner is not None and not runner.done():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await self._shutdown()

    def _closing(self) -> None:
        """What must happen before the connection's tasks are cancelled (nothing, unless a transport says)."""

    async def _shutdown(self) -> None:
        raise NotImplementedError

    def run_in_pump(self, step: PumpStep) -> None:
        """Run ``step(session, now)`` in the pump, in order with everything else, and carry out its outputs."""
        self._inbox.put_nowait(Message("step", step))

    # --- what a transport provides --------------------------------------------------------------------------

    async def _send(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def _play(self, output: PlayAudio) -> None:
        """Queue response audio on the outgoing track (WebRTC only: the WebSocket core sends deltas instead)."""

    def _clear_audio(self) -> None:
        """Drop queued response audio."""

    async def _before_close(self) -> None:
        """Let already-sent events leave before the connection closes (a CloseCall output)."""

    async def _gate(self) -> None:
        """Wait while the call is frozen by a fault (WebSocket); returns at once otherwise."""

    # --- the pump -------------------------------------------------------------------------------------------

    async def _pump(self) -> None:
        session = self.session
        await self._apply(session.start(self._clock()))
        while True:
            message = await self._next_message(session.next_deadline())
            await self._gate()
            now = self._clock()
            outputs: list[Output] = []
            if message is not None:
                if message.kind == "end":
                    self.close_reason = self.close_reason or str(message.payload)
                    return
                outputs = self._deliver_safely(message, now)
            outputs += session.tick(now)
            if await self._apply(outputs):
                return

    async def _next_message(self, deadline: float | None) -> Message | None:
        """The next inbox message, or None once ``deadline`` (the session's next due time) has come.

        ``deadline=None``: nothing is due, so only a message can wake the pump."""
        delay = None if deadline is None else deadline - self._clock()
        if delay is not None and delay <= 0:
            return None if self._inbox.empty() else self._inbox.get_nowait()
        try:
            async with asyncio.timeout(delay):
                return await self._inbox.get()
        except TimeoutError:
            return None

    def _deliver_safely(self, message: Message, now: float) -> list[Output]:
        try:
            return self._deliver(message, now)
        except Exception:  # a bug in the core must not end the call; answer like the real API's server_error
            log.debug("call %s: internal error on %s", self.id, message.kind, exc_info=True)
            if message.kind != "text":
                return []
            error = {
                "type": "server_error",
                "code": None,
                "message": "The server had an error while processing your request.",
                "param": None,
                "event_id": None,
            }
            return [self.session.event("error", error=error)]

    def _deliver(self, message: Message, now: float) -> list[Output]:
        session = self.session
        if message.kind == "text":
            self._record_received(message.payload)
            return session.receive_text(message.payload, now)
        if message.kind == "audio":
            return session.receive_audio(message.payload, now)
        if message.kind == "played":
            response_id, played_ms, finished = message.payload
            return session.audio_played(response_id, played_ms, now, finished=finished)
        if message.kind == "step":
            outputs: list[Output] = message.payload(session, now)
            return outputs
        if message.kind == "transcript":
            item_id, text, error = message.payload
            if error is not None:
                return session.transcription_failed(item_id, error, now)
            return session.transcription_result(item_id, text, now)
        if message.kind == "sentence":
            response_id, text, pcm = message.payload
            return session.reply_sentence(response_id, text, pcm, now)
        if message.kind == "reply_text":
            response_id, delta = message.payload
            return session.reply_text(response_id, delta, now)
        if message.kind == "reply_end":
            response_id, usage, error = message.payload
            self._replies.pop(response_id, None)
            return session.reply_end(response_id, usage, error, now)
        response_id, pcm = message.payload
        return session.speech_ready(response_id, pcm, now)

    def _record_received(self, text: str | bytes) -> None:
        try:
            self.events_received.append(json.loads(text))
        except ValueError:
            self.events_received.append(text)

    async def _apply(self, outputs: list[Output]) -> bool:
        """Carry out outputs in order; True when the call must end."""
        for output in outputs:
            if isinstance(output, SendEvent):
                await self._send(output.event)
            elif isinstance(output, PlayAudio):
                self._play(output)
            elif isinstance(output, ClearAudio):
                self._clear_audio()
            elif isinstance(output, Synthesize):
                self._own(self._render(output), f"voice-{output.response_id}")
            elif isinstance(output, Transcribe):
                self._own(self._transcribe(output), f"stt-{output.item_id}")
            elif isinstance(output, Generate):
                self._replies[output.response_id] = self._own(self._generate(output), f"reply-{output.response_id}")
            elif isinstance(output, StopGenerating):
                reply = self._replies.pop(output.response_id, None)
                if reply is not None:
                    reply.cancel()  # closes the model's stream at once; still owned (awaited by _stop_voices)
            elif isinstance(output, CloseCall):
                self.close_reason = output.reason
                await self._before_close()
                return True
        return False

    def _own(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._voices.add(task)
        task.add_done_callback(self._voices.discard)
        return task

    async def _render(self, request: Synthesize) -> None:
        pcm = await self._backend.speak(request.text, request.voice)
        self._inbox.put_nowait(Message("speech", (request.response_id, pcm)))

    async def _transcribe(self, job: Transcribe) -> None:
        try:
            text, error = await self._backend.transcribe(job), None
        except VoicecoachError as exc:
            text, error = "", str(exc)
        except Exception as exc:  # a bug in a backend must not end the call: the turn's transcription fails
            log.debug("call %s: transcription of %s failed", self.id, job.item_id, exc_info=True)
            text, error = "", f"internal error ({type(exc).__name__})"
        self._inbox.put_nowait(Message("transcript", (job.item_id, text, error)))

    async def _generate(self, job: Generate) -> None:
        usage: ReplyUsage | None = None
        error: str | None = None
        try:
            usage = await self._backend.generate(job.request, _InboxSink(self._inbox, job.response_id))
        except VoicecoachError as exc:
            error = str(exc)
        except Exception as exc:  # as above: the response fails, the call goes on
            log.debug("call %s: reply %s failed", self.id, job.response_id, exc_info=True)
            error = f"internal error ({type(exc).__name__})"
        self._inbox.put_nowait(Message("reply_end", (job.response_id, usage, error)))

    async def _stop_voices(self) -> None:
        for task in self._voices:
            task.cancel()
        await asyncio.gather(*self._voices, return_exceptions=True)
        self._voices.clear()
