"""Server events: one model per wire ``type`` we consume, parsed through one discriminated union.

:func:`parse_server_event` never raises. Whatever arrives on the data channel becomes one of:

* a typed event (GA name; beta names are mapped first, realtime-protocol.md §5.1),
* :class:`UnknownEvent` for a ``type`` we do not model (future events, MCP, …): kept as data,
* :class:`MalformedEvent` for text that is not JSON, not an object, lacks ``type``, or has a known ``type``
  with missing or ill-typed fields: kept as data with a one-line reason.

Models are lenient about extra keys (``obfuscation``, ``logprobs``, …) and strict about the fields we read.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

BETA_TO_GA = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "conversation.item.created": "conversation.item.added",
}

# Largest message we even try to parse. The data channel allows 256 KiB; anything bigger is hostile.
MAX_EVENT_BYTES = 1 << 20


class Event(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    event_id: str | None = None


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    type: str | None = None
    code: str | None = None
    message: str = ""
    param: str | None = None
    event_id: str | None = None


class ErrorEvent(Event):
    type: Literal["error"]
    error: ErrorDetail


class SessionCreated(Event):
    type: Literal["session.created"]
    session: dict[str, Any]


class SessionUpdated(Event):
    type: Literal["session.updated"]
    session: dict[str, Any]


class SpeechStarted(Event):
    type: Literal["input_audio_buffer.speech_started"]
    item_id: str
    audio_start_ms: int = 0


class SpeechStopped(Event):
    type: Literal["input_audio_buffer.speech_stopped"]
    item_id: str
    audio_end_ms: int = 0


class BufferCommitted(Event):
    type: Literal["input_audio_buffer.committed"]
    item_id: str
    previous_item_id: str | None = None


class ContentPart(BaseModel):
    """A content part of an item. ``type`` is normalized: ``audio``→``output_audio``, ``text``→``output_text``."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str
    text: str | None = None
    transcript: str | None = None

    @property
    def kind(self) -> str:
        return {"audio": "output_audio", "text": "output_text"}.get(self.type, self.type)

    @property
    def words(self) -> str:
        return self.text or self.transcript or ""


class Item(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    id: str
    type: str
    role: str | None = None
    status: str | None = None
    content: list[ContentPart] = []


class ItemAdded(Event):
    """``conversation.item.added`` (GA) or ``conversation.item.created`` (beta, mapped here)."""

    type: Literal["conversation.item.added"]
    item: Item
    previous_item_id: str | None = None


class ItemDone(Event):
    type: Literal["conversation.item.done"]
    item: Item
    previous_item_id: str | None = None


class ItemDeleted(Event):
    type: Literal["conversation.item.deleted"]
    item_id: str


class ItemTruncated(Event):
    type: Literal["conversation.item.truncated"]
    item_id: str
    audio_end_ms: int = 0


class TranscriptionDelta(Event):
    type: Literal["conversation.item.input_audio_transcription.delta"]
    item_id: str
    delta: str = ""
    content_index: int = 0


class TranscriptionCompleted(Event):
    type: Literal["conversation.item.input_audio_transcription.completed"]
    item_id: str
    transcript: str
    content_index: int = 0


class TranscriptionFailed(Event):
    type: Literal["conversation.item.input_audio_transcription.failed"]
    item_id: str
    error: ErrorDetail | None = None


class TokenDetails(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    text_tokens: int = 0
    audio_tokens: int = 0
    image_tokens: int = 0


class InputTokenDetails(TokenDetails):
    cached_tokens: int = 0
    cached_tokens_details: TokenDetails | None = None


class Usage(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    input_token_details: InputTokenDetails | None = None
    output_token_details: TokenDetails | None = None


class Response(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    id: str
    status: str | None = None
    status_details: dict[str, Any] | None = None
    output: list[Item] = []
    usage: Usage | None = None
    metadata: dict[str, str] | None = None
    conversation_id: str | None = None


class ResponseCreated(Event):
    type: Literal["response.created"]
    response: Response


class ResponseDone(Event):
    type: Literal["response.done"]
    response: Response


class TranscriptDelta(Event):
    """``response.output_audio_transcript.delta`` (and the text twin): what the coach is saying."""

    type: Literal["response.output_audio_transcript.delta", "response.output_text.delta"]
    response_id: str
    item_id: str
    delta: str = ""


class TranscriptDone(Event):
    type: Literal["response.output_audio_transcript.done", "response.output_text.done"]
    response_id: str
    item_id: str
    transcript: str | None = None
    text: str | None = None

    @property
    def words(self) -> str:
        return self.transcript or self.text or ""


class OutputAudioBufferStarted(Event):
    type: Literal["output_audio_buffer.started"]
    response_id: str | None = None


class OutputAudioBufferStopped(Event):
    type: Literal["output_audio_buffer.stopped"]
    response_id: str | None = None


class OutputAudioBufferCleared(Event):
    type: Literal["output_audio_buffer.cleared"]
    response_id: str | None = None


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None


class RateLimitsUpdated(Event):
    type: Literal["rate_limits.updated"]
    rate_limits: list[RateLimit] = []


class UnknownEvent(BaseModel):
    """A well-formed event whose ``type`` we do not model. Kept whole in ``raw``."""

    model_config = ConfigDict(frozen=True)
    type: str
    raw: dict[str, Any]


class MalformedEvent(BaseModel):
    """Anything that could not be read as an event; ``reason`` is one line for the event log."""

    model_config = ConfigDict(frozen=True)
    type: str | None
    reason: str
    raw: Any = None


KnownEvent = Annotated[
    ErrorEvent
    | SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | BufferCommitted
    | ItemAdded
    | ItemDone
    | ItemDeleted
    | ItemTruncated
    | TranscriptionDelta
    | TranscriptionCompleted
    | TranscriptionFailed
    | ResponseCreated
    | ResponseDone
    | TranscriptDelta
    | TranscriptDone
    | OutputAudioBufferStarted
    | OutputAudioBufferStopped
    | OutputAudioBufferCleared
    | RateLimitsUpdated,
    Field(discriminator="type"),
]
ServerEvent = KnownEvent | UnknownEvent | MalformedEvent

_KNOWN: TypeAdapter[KnownEvent] = TypeAdapter(KnownEvent)
KNOWN_TYPES: frozenset[str] = frozenset(
    literal
    for member in KnownEvent.__args__[0].__args__  # Annotated[Union[...]] internals
    for literal in member.model_fields["type"].annotation.__args__
)


def parse_server_event(text: str | bytes) -> ServerEvent:
    """Parse one data-channel message. Never raises."""
    data = decode_message(text)
    return data if isinstance(data, MalformedEvent) else parse_server_dict(data)


def decode_message(text: str | bytes) -> Any:
    """The JSON value of one message, or a MalformedEvent saying why there is none. Never raises."""
    if len(text) > MAX_EVENT_BYTES:
        return MalformedEvent(type=None, reason=f"message of {len(text)} bytes is over the {MAX_EVENT_BYTES} limit")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return MalformedEvent(type=None, reason=f"not JSON: {exc}", raw=_preview(text))


def parse_server_dict(data: Any) -> ServerEvent:
    if not isinstance(data, dict):
        return MalformedEvent(type=None, reason=f"not a JSON object but {type(data).__name__}", raw=data)
    kind = data.get("type")
    if not isinstance(kind, str):
        return MalformedEvent(type=None, reason="the 'type' field is missing or not a string", raw=data)
    if kind in BETA_TO_GA:
        data = {**data, "type": BETA_TO_GA[kind]}
        kind = data["type"]
    if kind not in KNOWN_TYPES:
        return UnknownEvent(type=kind, raw=data)
    try:
        return _KNOWN.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "event"
        return MalformedEvent(type=kind, reason=f"{where}: {first['msg']}", raw=data)


def _preview(text: str | bytes, limit: int = 200) -> str:
    s = text if isinstance(text, str) else text.decode("utf-8", "replace")
    return s if len(s) <= limit else s[:limit] + "…"
