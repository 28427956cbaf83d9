"""The server's outgoing audio track: the model's voice, paced in real time like a real peer.

It always produces 20 ms frames of 48 kHz mono s16 with continuous ``pts`` (silence when there is nothing to
say), because a track that stops producing frames or jumps in time makes the receiver's jitter buffer stall
(design.md §6). Response audio is queued per response; :meth:`clear` empties the queue so the very next frame
is silent.

For each frame that carries audio of a response, ``on_played(response_id, played_ms, finished)`` reports how
much of that response has been sent so far and whether none of it is left in the queue; the call turns
those reports into ``output_audio_buffer.started/stopped`` and truncation offsets. The callback runs on the
event loop (aiortc awaits :meth:`recv` there), never on another thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from ..audio.frames import WIRE_FRAME_SAMPLES, WIRE_RATE, Pcm, frame_from_pcm, silence

log = logging.getLogger(__name__)

PlayedCallback = Callable[[str, int, bool], None]


class ResponseAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, on_played: PlayedCallback | None = None) -> None:
        super().__init__()
        self._on_played = on_played
        self._queue: deque[tuple[str, Pcm]] = deque()
        self._offset = 0  # samples of the head segment already sent
        self._queued: dict[str, int] = {}  # samples still queued, per response
        self._played: dict[str, int] = {}  # samples sent, per response
        self._start: float | None = None
        self._pts = 0

    def enqueue(self, response_id: str, pcm: Pcm) -> None:
        if pcm.size == 0:
            return
        self._queue.append((response_id, pcm))
        self._queued[response_id] = self._queued.get(response_id, 0) + int(pcm.size)

    def clear(self) -> None:
        """Drop all queued audio: the next frame is silence."""
        self._queue.clear()
        self._queued.clear()
        self._offset = 0

    @property
    def queued_samples(self) -> int:
        return sum(self._queued.values())

    def played_ms(self, response_id: str) -> int:
        return self._played.get(response_id, 0) * 1000 // WIRE_RATE

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += WIRE_FRAME_SAMPLES
            # Pace on the frame's due time (not "now + 20 ms") so scheduling jitter does not accumulate.
            delay = self._start + self._pts / WIRE_RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        pcm, touched = self._take(WIRE_FRAME_SAMPLES)
        frame = frame_from_pcm(pcm, WIRE_RATE, self._pts)
        if self._on_played is not None:
            for response_id in touched:
                finished = self._queued.get(response_id, 0) == 0
                self._on_played(response_id, self.played_ms(response_id), finished)
        return frame

    def _take(self, count: int) -> tuple[Pcm, list[str]]:
        parts: list[Pcm] = []
        touched: list[str] = []
        need = count
        while need and self._queue:
            response_id, pcm = self._queue[0]
            piece = pcm[self._offset : self._offset + need]
            parts.append(piece)
            need -= piece.size
            self._offset += piece.size
            self._played[response_id] = self._played.get(response_id, 0) + int(piece.size)
            left = self._queued[response_id] - int(piece.size)
            if left:
                self._queued[response_id] = left
            else:
                del self._queued[response_id]
            if response_id not in touched:
                touched.append(response_id)
            if self._offset >= pcm.size:
                self._queue.popleft()
                self._offset = 0
        if not parts:
            return silence(count), touched
        if need:
            parts.append(silence(need))
        return np.concatenate(parts), touched
