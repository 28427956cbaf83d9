"""A response whose words and voice a live backend makes as it goes (``Generate`` → ``reply_*``).

Same events, in the same order, as a scripted :class:`~voicecoach.server.responses.Response` (realtime-protocol.md
§6.3): ``response.created``; at the first sentence ``output_item.added`` (and ``conversation.item.added`` in
band) and ``content_part.added``; then per word a transcript delta with its share of that sentence's audio; at
the end ``output_audio.done``, ``output_audio_transcript.done``, ``content_part.done``, (``conversation.item.done``),
``output_item.done``, ``response.done``, ``rate_limits.updated``; ``output_audio_buffer.started/stopped`` from
the output track's playback reports.

Lifecycle::

    created ──(first sentence / text)──► streaming ──(reply_end)──► done (completed, or failed with an error)
       │                                     │
       ├── cancel: response.done ────────────┴── cancel / over max_output_tokens: parts and item incomplete
       └── reply_end with an error: response.done failed

Why the transcript moves with the audio (one sentence at a time) rather than with the model's tokens: as in
the scripted response and the real API, a word's delta carries that word's audio, so ``max_output_tokens`` (text
and audio tokens together) cuts text and audio at the same word, and a truncation keeps the words heard. The
first sentence is spoken as soon as it is complete, so the first audio never waits for the whole hint.

Usage: input and output text tokens are the language model's own counts when it reported them, else the
server's estimate (one token per 4 characters); audio tokens are the protocol's 20 per second of speech.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio.frames import WIRE_RATE, Pcm
from .backend import ReplyUsage
from .codec import encode_output
from .ids import IdFactory
from .outputs import Generate, Output, ReplyRequest, StopGenerating
from .responses import AUDIO_DELTA_MS, Response, ResponseParams, Status
from .usage import RateLimiter, Usage


@dataclass(frozen=True)
class _Spoken:
    """One sentence's audio in the session's output format (WebSocket), at 48 kHz positions [start, end)."""

    start: int
    end: int
    encoded: bytes


class LiveResponse(Response):
    def __init__(
        self, params: ResponseParams, request: ReplyRequest, ids: IdFactory, now: float, *, stream_audio: bool
    ) -> None:
        super().__init__(params, ids, now, latency=0.0, speed=1.0, stream_audio=stream_audio)
        self.request = request
        self._spoken: list[_Spoken] = []
        self._reported: ReplyUsage | None = None
        self._error = ""

    # --- what the core asks of every response ---------------------------------------------------------------

    def created(self) -> list[Output]:
        return [self._event("response.created", response=self.wire()), Generate(self.id, self.request)]

    def next_due(self) -> float | None:
        return None  # everything here is driven by the backend's reports, never by the clock

    def tick(self, now: float, limiter: RateLimiter) -> list[Output]:
        return []

    def wire(self) -> dict[str, Any]:
        out = super().wire()
        if self.status == "failed":
            error = {"type": "server_error", "code": "backend_error", "message": self._error}
            out["status_details"] = {"type": "failed", "error": error}
        return out

    @property
    def audio_outstanding(self) -> bool:
        """Audio still queued or still to come: while generating, every sentence still to come counts, so an
        ``output_audio_buffer.clear`` mid-generation also silences the sentences not yet spoken."""
        if self.cleared or self.params.modality != "audio" or self.stream_audio:
            return False
        return self.state != "done" or (self.samples_pushed > 0 and not self.playback_finished)

    # --- the backend's reports ------------------------------------------------------------------------------

    def reply_sentence(self, text: str, pcm: Pcm, now: float, limiter: RateLimiter) -> list[Output]:
        """One finished sentence and its speech (48 kHz mono)."""
        if self.state == "done" or self.params.modality != "audio":
            return []
        out = self._streaming()
        # Sentences come trimmed; the transcript keeps one space between them.
        words = re.findall(r"\s*\S+", (" " if self._chunks else "") + text.strip())
        if not words:
            return out
        start = self._pcm.size if self._pcm is not None else 0
        self._pcm = pcm if self._pcm is None else np.concatenate([self._pcm, pcm])
        if self.stream_audio and pcm.size:
            encoded, self._bytes_per_second, self._sample_bytes = encode_output(pcm, self.params.audio_format)
            self._spoken.append(_Spoken(start, start + int(pcm.size), encoded))
        total = sum(len(w) for w in words)
        chars = 0
        for word in words:  # each word carries its share of the sentence's audio, by characters
            chars += len(word)
            self._chunks.append(word)
            self._bounds.append(start + round(pcm.size * chars / total))
        return out + self._emit(now, limiter)

    def reply_text(self, delta: str, now: float, limiter: RateLimiter) -> list[Output]:
        """One piece of a text reply, sent on as it comes."""
        if self.state == "done" or self.params.modality != "text" or not delta:
            return []
        out = self._streaming()
        self._chunks.append(delta)
        self._bounds.append(0)
        return out + self._emit(now, limiter)

    def reply_end(self, usage: ReplyUsage | None, error: str | None, now: float, limiter: RateLimiter) -> list[Output]:
        """The reply is over: completed, or failed with ``error`` (one line, for ``status_details``)."""
        if self.state == "done":
            return []
        self._reported = usage
        if error is not None:
            self._error = error
            if self.state == "created":  # nothing was said: like a cancel before any output
                self.state, self.status = "done", "failed"
                self.usage = Usage()
                return [self._event("response.done", response=self.wire())]
            return self._finish("failed", now, limiter)
        return self._streaming() + self._finish("completed", now, limiter)

    def cancel(self, reason: str, now: float, limiter: RateLimiter) -> list[Output]:
        generating = self.state != "done"
        out = super().cancel(reason, now, limiter)
        return [*out, StopGenerating(self.id)] if generating else out

    # --- inside ---------------------------------------------------------------------------------------------

    def _streaming(self) -> list[Output]:
        if self.state != "created":
            return []
        self.state = "streaming"
        return self._open_item()

    def _emit(self, now: float, limiter: RateLimiter) -> list[Output]:
        """Send every word the budget allows; past it, end the response incomplete and stop the backend."""
        self._limit = self._allowed_chunks()
        out: list[Output] = []
        while self.emitted < self._limit:
            out += self._delta()
        if self._limit < len(self._chunks):
            out += [*self._finish("incomplete", now, limiter), StopGenerating(self.id)]
        return out

    def _allowed_chunks(self) -> int:
        # The scripted response searches all its words at once; here they come a sentence at a time, and the
        # count allowed only grows, so the search goes on from the last one.
        limit = self.params.max_output_tokens
        if not isinstance(limit, int):
            return len(self._chunks)
        k = self._limit
        while k < len(self._chunks) and sum(self._output_tokens(k + 1)) <= limit:
            k += 1
        return k

    def _settle_usage(self, status: Status) -> None:
        super()._settle_usage(status)
        reported = self._reported
        if reported is None or status != "completed":
            return
        # The model read text only (transcripts, never audio): its prompt count is the whole input.
        usage = self.usage
        usage.input_text, usage.input_audio = reported.input_tokens, 0
        usage.cached_text, usage.cached_audio = min(usage.cached_text, reported.input_tokens), 0
        usage.output_text = reported.output_tokens

    def _audio_deltas(self, start: int, end: int) -> list[Output]:
        """``response.output_audio.delta`` events for samples [start, end) of one sentence (a word's share)."""
        spoken = next((s for s in self._spoken if s.start <= start < s.end), None)
        if spoken is None:
            return []
        lo, hi = self._byte_in(spoken, start), self._byte_in(spoken, end)
        step = max(self._sample_bytes, self._bytes_per_second * AUDIO_DELTA_MS // 1000)
        step -= step % self._sample_bytes
        out: list[Output] = []
        for offset in range(lo, hi, step):
            delta = base64.b64encode(spoken.encoded[offset : min(hi, offset + step)]).decode("ascii")
            out.append(self._event("response.output_audio.delta", **self._part_ref(), delta=delta))
        return out

    def _byte_in(self, spoken: _Spoken, sample: int) -> int:
        if sample >= spoken.end:
            return len(spoken.encoded)
        offset = (sample - spoken.start) * self._bytes_per_second // WIRE_RATE
        return min(len(spoken.encoded), offset - offset % self._sample_bytes)
