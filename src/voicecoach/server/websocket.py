"""One WebSocket connection (``GET /v1/realtime?model=…`` upgraded) driving a :class:`RealtimeSession`.

The same sans-I/O core and pump as a WebRTC call (:mod:`.pump`); only the wire differs
(realtime-protocol.md §2.7, next-wave.md §6):

* client events are JSON text frames; the microphone comes as ``input_audio_buffer.append`` (base64 in the
  session's input format), which the core decodes into the same VAD and transcription path RTP audio takes;
* the model's voice goes out as ``response.output_audio.delta`` events made by the core as fast as the
  response is generated (faster than real time), never on a track; no ``output_audio_buffer.*`` events.

Tasks (owned by :meth:`WebSocketCall.run`, cancelled and awaited by :meth:`WebSocketCall.close`): the pump;
the reader (frames → inbox; it answers pings itself, because aiohttp's autoping is off for every connection so
that a frozen connection can stop answering them); the writer (outbox → socket, in order); the voice renders.

Faults (see :mod:`.faults`): :meth:`drop` ends the TCP connection without a close frame; :meth:`freeze` stops
everything the connection sends (events and pong replies) and everything it reads, as a stopped process or a
black-holed network would, until :meth:`thaw`; :meth:`send_raw` sends any text or bytes as-is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from ..audio.frames import WIRE_RATE, Pcm, silence
from .backend import Backend
from .codec import decode_audio
from .fitting import encode
from .pump import Message, SessionPump
from .schema import WireError
from .session import RealtimeSession

log = logging.getLogger(__name__)

# A normal close. The real API's close code after session_expired is UNCONFIRMED; the reason follows the
# "<type>.<code>" pattern OpenAI uses for its other closes (realtime-protocol.md §8).
CLOSE_NORMAL = 1000
_END_FRAMES = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class WebSocketCall(SessionPump):
    """A WebSocket session plus introspection for tests: ``events_sent``, ``events_received`` (appends keep
    a short ``audio`` placeholder; the audio itself is in ``received_audio``, the last ``record_seconds`` of
    mono 48 kHz PCM), ``closed``, ``close_reason``, ``frozen``."""

    transport = "websocket"

    def __init__(
        self,
        call_id: str,
        session: RealtimeSession,
        ws: web.WebSocketResponse,
        connection: asyncio.BaseTransport | None,
        *,
        backend: Backend,
        record_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(call_id, session, backend=backend, clock=clock)
        self._ws = ws
        self._connection = connection  # the TCP transport under the socket (for drop)
        self._outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._recording: deque[Pcm] = deque()
        self._recorded = 0
        self._record_max = int(record_seconds * WIRE_RATE)
        self._close_code = CLOSE_NORMAL

    @property
    def received_audio(self) -> Pcm:
        return np.concatenate(list(self._recording)) if self._recording else silence(0)

    @property
    def frozen(self) -> bool:
        return not self._thawed.is_set()

    # --- fault-injection hooks (used by faults.py) -----------------------------------------------------------

    def send_raw(self, message: str | bytes) -> bool:
        """Send ``message`` as one frame (text for str, binary for bytes), bypassing the session."""
        if self.closed or self._ws.closed:
            return False
        self._outbox.put_nowait(message)
        return True

    def drop(self) -> bool:
        """End the TCP connection now, with no close frame (the client sees an abnormal closure, 1006)."""
        connection = self._connection
        if connection is None or connection.is_closing():
            return False
        abort = getattr(connection, "abort", None)  # asyncio transports have it; the base class does not
        (abort or connection.close)()
        return True

    def freeze(self) -> None:
        """Stop sending anything (events, pong replies) and stop reading, until :meth:`thaw`."""
        self._thawed.clear()

    def thaw(self) -> None:
        """Carry on: what was held back is sent, and due timers fire late, as after SIGCONT."""
        self._thawed.set()

    # --- running --------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._runner = asyncio.create_task(self.run(), name=f"ws-{self.id}")

    async def wait(self) -> None:
        """Until the connection has ended (the HTTP handler holds the socket open this long)."""
        if self._runner is not None:
            await asyncio.shield(self._runner)

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                reader = tasks.create_task(self._read(), name=f"ws-{self.id}-read")
                writer = tasks.create_task(self._write(), name=f"ws-{self.id}-write")
                await self._pump()
                reader.cancel()
                await self._drain_outbox()
                writer.cancel()
        except Exception:  # ending the call is the handling; nobody awaits this task's result
            log.debug("websocket %s failed", self.id, exc_info=True)
            self.close_reason = self.close_reason or "internal error"
        finally:
            await self._stop_voices()
            await self._shutdown()

    def _closing(self) -> None:
        self._thawed.set()  # a frozen connection must not keep the server from stopping

    async def _shutdown(self) -> None:
        if not self.closed:
            self.closed = True
            log.debug("websocket %s closed: %s", self.id, self.close_reason or "ended")
        if not self._ws.closed:
            reason = self.close_reason if self.close_reason == "session_expired" else ""
            message = f"invalid_request_error.{reason}".encode() if reason else b""
            with contextlib.suppress(ConnectionError, RuntimeError):
                await asyncio.shield(self._ws.close(code=self._close_code, message=message))

    # --- the transport's side of the pump --------------------------------------------------------------------

    async def _send(self, event: dict[str, Any]) -> None:
        self.events_sent.append(event)
        self._outbox.put_nowait(encode(event))

    async def _before_close(self) -> None:
        await self._drain_outbox()

    async def _gate(self) -> None:
        await self._thawed.wait()

    async def _drain_outbox(self) -> None:
        """Let queued frames (e.g. the final ``error``) leave before the socket closes (bounded)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._outbox.join()

    async def _write(self) -> None:
        ws = self._ws
        while True:
            frame = await self._outbox.get()
            try:
                await self._thawed.wait()
                if ws.closed:
                    continue
                if isinstance(frame, str):
                    await ws.send_str(frame)
                else:
                    await ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):  # the client went away mid-send: the reader ends the call
                log.debug("websocket %s: send failed", self.id, exc_info=True)
            finally:
                self._outbox.task_done()

    async def _read(self) -> None:
        ws = self._ws
        while True:
            await self._thawed.wait()
            msg = await ws.receive()
            await self._thawed.wait()  # a frame that came in as the connection froze waits for the thaw
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                self._inbox.put_nowait(Message("text", msg.data))
            elif msg.type == WSMsgType.PING:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.pong(msg.data)
            elif msg.type in _END_FRAMES:
                self._inbox.put_nowait(Message("end", "the client closed the WebSocket"))
                return

    def _record_received(self, text: str | bytes) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            self.events_received.append(text)
            return
        if isinstance(data, dict) and data.get("type") == "input_audio_buffer.append":
            audio = data.get("audio")
            if isinstance(audio, str):
                self._record_audio(audio)
                data = {**data, "audio": f"<{len(audio)} base64 characters>"}
        self.events_received.append(data)

    def _record_audio(self, audio: str) -> None:
        with contextlib.suppress(WireError):
            pcm = decode_audio(audio, self.session.session["audio"]["input"]["format"], "audio")
            self._recording.append(pcm)
            self._recorded += int(pcm.size)
            while self._recorded > self._record_max and self._recording:
                self._recorded -= int(self._recording.popleft().size)
