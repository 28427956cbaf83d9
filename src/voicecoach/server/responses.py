"""One model response: its event sequence, its pacing, its audio and its usage (realtime-protocol.md §6.3).

Lifecycle (``now`` always passed in)::

    created ──(latency elapsed, and the voice rendered for audio)──► streaming ──(last delta)──► done
       │                                                                │
       └──────────────── cancel: response.done, output [] ──────────────┴── cancel: parts/items incomplete

A response is *generated* ``generation_speed`` times faster than it is *spoken*: each transcript delta is
due when its share of the speech has been generated, and carries that share of the audio to the output
track. So ``response.done`` arrives well before playback ends, as with the real API, and
``output_audio_buffer.stopped`` follows when the track has played everything.

Over WebSocket (``stream_audio``) there is no track: each share of the audio goes out at once as
``response.output_audio.delta`` events of at most :data:`AUDIO_DELTA_MS` each, in the session's output format,
and there are no ``output_audio_buffer.*`` events, no playback reports and no server-side truncation (the
client plays, so the client truncates, realtime-protocol.md §2.7).
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

from ..audio.frames import WIRE_RATE, Pcm
from .codec import encode_output
from .conversation import Conversation, Item
from .ids import IdFactory
from .outputs import Output, PlayAudio, SendEvent, Synthesize
from .usage import ASSISTANT_AUDIO_TOKENS_PER_S, RateLimiter, Segment, Usage, audio_tokens, text_tokens
from .voice import WORD_SECONDS

log = logging.getLogger(__name__)

Status = Literal["in_progress", "completed", "cancelled", "incomplete", "failed"]

# The longest audio one response.output_audio.delta carries on WebSocket: small enough that a client can start
# playing early and a cancel wastes little, large enough that events stay few (5 per second of speech).
AUDIO_DELTA_MS = 200


@dataclass
class ResponseParams:
    """What ``response.create`` (merged with the session) asked for."""

    text: str  # what the scripted model says
    modality: Literal["audio", "text"]
    voice: Any
    audio_format: dict[str, Any]
    max_output_tokens: int | str
    metadata: dict[str, str] | None
    conversation: Conversation | None  # None: out-of-band
    input_segments: list[Segment]
    previous_segments: list[Segment]


class Response:
    def __init__(
        self,
        params: ResponseParams,
        ids: IdFactory,
        now: float,
        *,
        latency: float,
        speed: float,
        stream_audio: bool = False,
    ) -> None:
        self.id = ids.response()
        self.stream_audio = stream_audio  # WebSocket: audio as delta events, not on a track
        self.params = params
        self._ids = ids
        self._speed = speed
        self.status: Status = "in_progress"
        self.state: Literal["created", "streaming", "done"] = "created"
        self._start_at = now + latency
        self._pcm: Pcm | None = None
        self._encoded = b""  # stream_audio: the whole voice in the output format
        self._bytes_per_second = 0
        self._sample_bytes = 2
        self.item: Item | None = None
        self._chunks: list[str] = []
        self._due: list[float] = []
        self._bounds: list[int] = []  # audio sample boundary after each chunk
        self._limit = 0  # chunks allowed by max_output_tokens
        self.emitted = 0
        self.samples_pushed = 0
        self.played_ms = 0
        self.audio_started = False
        self.playback_finished = False
        self.cleared = False
        self._stopped_sent = False
        self._reason = "client_cancelled"
        self.usage = Usage.for_input(params.input_segments, params.previous_segments)

    # --- the events ----------------------------------------------------------------------------------------

    @property
    def in_band(self) -> bool:
        return self.params.conversation is not None

    @property
    def active(self) -> bool:
        return self.state != "done"

    def _event(self, kind: str, **fields: Any) -> SendEvent:
        event_id = self._ids.buffer_event() if kind.startswith("output_audio_buffer.") else self._ids.event()
        return SendEvent({"type": kind, "event_id": event_id, **fields})

    def wire(self) -> dict[str, Any]:
        p = self.params
        details: dict[str, Any] | None = None
        if self.status == "cancelled":
            details = {"type": "cancelled", "reason": self._reason}
        elif self.status == "incomplete":
            details = {"type": "incomplete", "reason": "max_output_tokens"}
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": self.status,
            "status_details": details,
            "output": [self.item.wire()] if self.item is not None else [],
            "conversation_id": p.conversation.id if p.conversation is not None else None,
            "output_modalities": [p.modality],
            "max_output_tokens": p.max_output_tokens,
            "audio": {"output": {"format": p.audio_format, "voice": p.voice}},
            "usage": self.usage.wire() if self.status != "in_progress" else None,
            "metadata": p.metadata,
        }

    def created(self) -> list[Output]:
        out: list[Output] = [self._event("response.created", response=self.wire())]
        if self.params.modality == "audio":
            out.append(Synthesize(self.id, self.params.text, str(self.params.voice)))
        return out

    def speech_ready(self, pcm: Pcm) -> None:
        self._pcm = pcm

    def next_due(self) -> float | None:
        """When :meth:`tick` has something to do; None while it waits for input (the voice, playback reports)."""
        if self.state == "created":
            # An audio response also waits for its voice; speech_ready() ticks when it comes.
            waiting_for_voice = self.params.modality == "audio" and self._pcm is None
            return None if waiting_for_voice else self._start_at
        if self.state == "streaming" and self.emitted < self._limit:
            return self._due[self.emitted]
        return None

    def tick(self, now: float, limiter: RateLimiter) -> list[Output]:
        out: list[Output] = []
        if self.state == "created":
            if now < self._start_at or (self.params.modality == "audio" and self._pcm is None):
                return out
            out += self._begin(now)
        while self.state == "streaming" and self.emitted < self._limit and self._due[self.emitted] <= now:
            out += self._delta()
        if self.state == "streaming" and self.emitted >= self._limit:
            status: Status = "completed" if self._limit == len(self._chunks) else "incomplete"
            out += self._finish(status, now, limiter)
        return out

    def _begin(self, now: float) -> list[Output]:
        self.state = "streaming"
        p = self.params
        self._chunks = re.findall(r"\s*\S+", p.text) or [p.text]
        total_chars = sum(len(c) for c in self._chunks) or 1
        samples = self._pcm.size if self._pcm is not None else 0
        if self.stream_audio and self._pcm is not None:
            self._encoded, self._bytes_per_second, self._sample_bytes = encode_output(self._pcm, p.audio_format)
        seconds = samples / WIRE_RATE if p.modality == "audio" else WORD_SECONDS * len(self._chunks)
        chars = 0
        for chunk in self._chunks:
            chars += len(chunk)
            self._bounds.append(round(samples * chars / total_chars))
            self._due.append(now + seconds * chars / total_chars / self._speed)
        self._limit = self._allowed_chunks()
        return self._open_item()

    def _open_item(self) -> list[Output]:
        """The assistant item and its one content part: ``output_item.added`` (and ``conversation.item.added``
        in band), ``content_part.added``."""
        p = self.params
        part_kind = "audio" if p.modality == "audio" else "text"
        self.item = Item(self._ids.item(), "message", status="in_progress", role="assistant")
        ref = {"response_id": self.id, "output_index": 0}
        out: list[Output] = [self._event("response.output_item.added", **ref, item=self.item.wire())]
        if p.conversation is not None:
            previous = p.conversation.add(self.item)
            out.append(self._event("conversation.item.added", previous_item_id=previous, item=self.item.wire()))
        if part_kind == "audio":
            self.item.content, part = [{"type": "output_audio", "transcript": ""}], {"type": "audio", "transcript": ""}
        else:
            self.item.content, part = [{"type": "output_text", "text": ""}], {"type": "text", "text": ""}
        out.append(self._event("response.content_part.added", **self._part_ref(), part=part))
        return out

    def _allowed_chunks(self) -> int:
        limit = self.params.max_output_tokens
        if not isinstance(limit, int):
            return len(self._chunks)
        for k in range(len(self._chunks), 0, -1):
            if sum(self._output_tokens(k)) <= limit:
                return k
        return 0

    def _output_tokens(self, chunks: int) -> tuple[int, int]:
        text = text_tokens("".join(self._chunks[:chunks]))
        if self.params.modality != "audio" or not chunks:
            return text, 0
        return text, audio_tokens(self._bounds[chunks - 1], ASSISTANT_AUDIO_TOKENS_PER_S)

    def _part_ref(self) -> dict[str, Any]:
        assert self.item is not None
        return {"response_id": self.id, "item_id": self.item.id, "output_index": 0, "content_index": 0}

    def _delta(self) -> list[Output]:
        chunk = self._chunks[self.emitted]
        self.emitted += 1
        assert self.item is not None
        part = self.item.content[0]
        kind = "response.output_audio_transcript.delta" if "transcript" in part else "response.output_text.delta"
        part["transcript" if "transcript" in part else "text"] += chunk
        out: list[Output] = [self._event(kind, **self._part_ref(), delta=chunk, obfuscation=self._ids.obfuscation())]
        if self._pcm is not None:
            start, end = self.samples_pushed, self._bounds[self.emitted - 1]
            piece = self._pcm[start:end]
            self.item.audio = self._pcm[:end]
            self.item.audio_samples = end
            self.samples_pushed = end
            if piece.size and self.stream_audio:
                out += self._audio_deltas(start, end)
            elif piece.size and not self.cleared:
                self.playback_finished = False
                out.append(PlayAudio(self.id, piece))
        return out

    def _audio_deltas(self, start: int, end: int) -> list[Output]:
        """``response.output_audio.delta`` events for the voice's samples ``[start, end)`` (48 kHz positions)."""
        lo, hi = self._byte_at(start), self._byte_at(end)
        step = max(self._sample_bytes, self._bytes_per_second * AUDIO_DELTA_MS // 1000)
        step -= step % self._sample_bytes
        out: list[Output] = []
        for offset in range(lo, hi, step):
            chunk = self._encoded[offset : min(hi, offset + step)]
            delta = base64.b64encode(chunk).decode("ascii")
            out.append(self._event("response.output_audio.delta", **self._part_ref(), delta=delta))
        return out

    def _byte_at(self, sample: int) -> int:
        """The byte offset in the encoded voice of 48 kHz sample ``sample`` (the end maps to the very end, so
        the resampler's last samples are sent too)."""
        if self._pcm is not None and sample >= self._pcm.size:
            return len(self._encoded)
        offset = sample * self._bytes_per_second // WIRE_RATE
        return min(len(self._encoded), offset - offset % self._sample_bytes)

    # --- ending --------------------------------------------------------------------------------------------

    def cancel(self, reason: str, now: float, limiter: RateLimiter) -> list[Output]:
        """Stop generating (``reason``: client_cancelled | turn_detected). Audio already queued keeps playing."""
        self._reason = reason
        if self.state == "created":
            self.state, self.status = "done", "cancelled"
            self.usage = Usage()
            return [self._event("response.done", response=self.wire())]
        return self._finish("cancelled", now, limiter)

    def _finish(self, status: Status, now: float, limiter: RateLimiter) -> list[Output]:
        assert self.item is not None
        self.state, self.status = "done", status
        self._settle_usage(status)
        self.item.status = "completed" if status == "completed" else "incomplete"
        part = dict(self.item.content[0])
        ref = self._part_ref()
        out: list[Output] = []
        if "transcript" in part:
            out.append(self._event("response.output_audio.done", **ref))
            out.append(self._event("response.output_audio_transcript.done", **ref, transcript=part["transcript"]))
            wire_part = {"type": "audio", "transcript": part["transcript"]}
        else:
            out.append(self._event("response.output_text.done", **ref, text=part["text"]))
            wire_part = {"type": "text", "text": part["text"]}
        out.append(self._event("response.content_part.done", **ref, part=wire_part))
        conversation = self.params.conversation
        if conversation is not None and conversation.get(self.item.id) is not None:
            previous = conversation.previous_id(self.item.id)
            out.append(self._event("conversation.item.done", previous_item_id=previous, item=self.item.wire()))
        out.append(self._event("response.output_item.done", response_id=self.id, output_index=0, item=self.item.wire()))
        out.append(self._event("response.done", response=self.wire()))
        out.append(self._event("rate_limits.updated", rate_limits=[limiter.spend(self.usage.total_tokens, now)]))
        log.debug("response %s %s: %d/%d chunks", self.id, status, self.emitted, len(self._chunks))
        return out + self._maybe_stopped()

    def _settle_usage(self, status: Status) -> None:
        """The final usage: nothing for a response cancelled before any output, else what it put out."""
        if status == "cancelled" and self.emitted == 0:
            self.usage = Usage()
        else:
            self.usage.output_text, self.usage.output_audio = self._output_tokens(self.emitted)

    # --- playback reports ----------------------------------------------------------------------------------

    def audio_played(self, played_ms: int, finished: bool) -> list[Output]:
        if self.cleared:
            return []
        out: list[Output] = []
        if not self.audio_started:
            self.audio_started = True
            out.append(self._event("output_audio_buffer.started", response_id=self.id))
        self.played_ms = max(self.played_ms, played_ms)
        self.playback_finished = finished
        return out + self._maybe_stopped()

    def _maybe_stopped(self) -> list[Output]:
        if self.state == "done" and self.audio_started and self.playback_finished and not self._stopped_sent:
            self._stopped_sent = True
            return [self._event("output_audio_buffer.stopped", response_id=self.id)]
        return []

    @property
    def settled(self) -> bool:
        """Nothing more can happen: generation is over and playback is reported (or was cut, or never was)."""
        if self.stream_audio:
            return self.state == "done"  # no playback to wait for: the client plays what it received
        return self.state == "done" and (self.cleared or self.samples_pushed == 0 or self._stopped_sent)

    @property
    def audio_outstanding(self) -> bool:
        """Audio of this response is queued or still to come (what a buffer clear would cut)."""
        if self.cleared or self.params.modality != "audio" or self.stream_audio:
            return False  # on WebSocket nothing is queued here: a barge-in only cancels (the client truncates)
        return (self.state != "done" and self.emitted < self._limit) or (
            self.samples_pushed > 0 and not self.playback_finished
        )

    def clear_audio(self) -> None:
        """The output buffer was cleared: nothing more of this response is played."""
        self.cleared = True

    def truncate_to_played(self) -> int:
        """Cut the item to what was heard; returns ``audio_end_ms``."""
        item = self.item
        assert item is not None
        heard = min(item.audio_samples, self.played_ms * WIRE_RATE // 1000)
        truncate_item(item, heard)
        return self.played_ms


def truncate_item(item: Item, samples: int) -> None:
    """Keep the first ``samples`` of an assistant item's audio, and the share of its transcript spoken in them.

    The real server drops the transcript text that was not heard; we keep the words heard (by their share
    of the audio) so that the context and ``conversation.item.retrieved`` stay meaningful.
    """
    total = item.audio_samples or 1
    item.audio_samples = samples
    for part in item.content:
        transcript = part.get("transcript")
        if isinstance(transcript, str):
            part["transcript"] = _prefix_by_share(transcript, samples / total)


def _prefix_by_share(text: str, share: float) -> str:
    chunks = re.findall(r"\s*\S+", text)
    keep, chars, limit = [], 0, len(text) * share
    for chunk in chunks:
        chars += len(chunk)
        if chars > limit + 0.5:
            break
        keep.append(chunk)
    return "".join(keep)
