"""Client events: one model per wire ``type`` we send, serialized with :func:`to_wire`.

Models forbid unknown keys because the real server rejects them (``unknown_parameter``), and they are
serialized with ``exclude_unset`` so that a field set explicitly to ``None`` goes out as JSON ``null``
(which is how the API switches things off, e.g. ``noise_reduction: null``) while untouched optional fields
are omitted. The ``type`` discriminators always count as set.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_ALWAYS_SENT = frozenset({"type", "role", "anchor"})


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def model_post_init(self, context: Any, /) -> None:
        # Discriminators (``type``, ``role``, ``anchor``) have defaults; exclude_unset must still emit them.
        self.__pydantic_fields_set__.update(_ALWAYS_SENT & type(self).model_fields.keys())

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


# --- session configuration (GA shape, realtime-protocol.md §1.1 / §3.1) ------------------------------------


class AudioFormat(WireModel):
    type: Literal["audio/pcm", "audio/pcmu", "audio/pcma"] = "audio/pcm"
    rate: Literal[24000] | None = None


class NoiseReduction(WireModel):
    type: Literal["near_field", "far_field"]


class Transcription(WireModel):
    model: str
    language: str | None = None
    prompt: str | None = None


class ServerVad(WireModel):
    type: Literal["server_vad"] = "server_vad"
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    prefix_padding_ms: int | None = Field(default=None, ge=0)
    silence_duration_ms: int | None = Field(default=None, ge=0)
    create_response: bool | None = None
    interrupt_response: bool | None = None


class AudioInput(WireModel):
    format: AudioFormat | None = None
    noise_reduction: NoiseReduction | None = None
    transcription: Transcription | None = None
    turn_detection: ServerVad | None = None


class AudioOutput(WireModel):
    voice: str | None = None
    speed: float | None = Field(default=None, ge=0.25, le=1.5)


class AudioConfig(WireModel):
    input: AudioInput | None = None
    output: AudioOutput | None = None


class SessionConfig(WireModel):
    """The GA ``session`` object. ``type`` is required by the server on every update."""

    type: Literal["realtime"] = "realtime"
    model: str | None = None
    instructions: str | None = None
    output_modalities: list[Literal["audio", "text"]] | None = None
    audio: AudioConfig | None = None
    max_output_tokens: int | Literal["inf"] | None = None


class TranscriptionAudio(WireModel):
    input: AudioInput | None = None


class TranscriptionSessionConfig(WireModel):
    """The GA ``session`` of a transcription-only session (``?intent=transcription``): input audio only, no
    model, no voice, no instructions (the SDK's ``RealtimeTranscriptionSessionCreateRequestParam``)."""

    type: Literal["transcription"] = "transcription"
    audio: TranscriptionAudio | None = None


AnySessionConfig = Annotated[SessionConfig | TranscriptionSessionConfig, Field(discriminator="type")]


class ExpiresAfter(WireModel):
    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(ge=10, le=7200)


class ClientSecretRequest(WireModel):
    """Body of ``POST /v1/realtime/client_secrets``."""

    expires_after: ExpiresAfter | None = None
    session: AnySessionConfig


# --- conversation items ----------------------------------------------------------------------------------


class InputText(WireModel):
    type: Literal["input_text"] = "input_text"
    text: str


class OutputText(WireModel):
    type: Literal["output_text"] = "output_text"
    text: str


class UserMessage(WireModel):
    type: Literal["message"] = "message"
    role: Literal["user"] = "user"
    content: list[InputText]


class SystemMessage(WireModel):
    type: Literal["message"] = "message"
    role: Literal["system"] = "system"
    content: list[InputText]


class AssistantMessage(WireModel):
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class ItemReference(WireModel):
    type: Literal["item_reference"] = "item_reference"
    id: str


InputItem = Annotated[UserMessage | SystemMessage | AssistantMessage, Field(union_mode="left_to_right")]
ResponseInput = Annotated[
    UserMessage | SystemMessage | AssistantMessage | ItemReference, Field(union_mode="left_to_right")
]


# --- the events ------------------------------------------------------------------------------------------


class SessionUpdate(WireModel):
    type: Literal["session.update"] = "session.update"
    event_id: str | None = None
    session: AnySessionConfig


class ConversationItemCreate(WireModel):
    type: Literal["conversation.item.create"] = "conversation.item.create"
    event_id: str | None = None
    previous_item_id: str | None = None
    item: InputItem


class ResponseParams(WireModel):
    conversation: Literal["auto", "none"] | None = None
    input: list[ResponseInput] | None = None
    instructions: str | None = None
    max_output_tokens: int | Literal["inf"] | None = None
    metadata: dict[str, str] | None = None
    output_modalities: list[Literal["audio", "text"]] | None = None


class ResponseCreate(WireModel):
    type: Literal["response.create"] = "response.create"
    event_id: str | None = None
    response: ResponseParams | None = None


class ResponseCancel(WireModel):
    type: Literal["response.cancel"] = "response.cancel"
    event_id: str | None = None
    response_id: str | None = None


class OutputAudioBufferClear(WireModel):
    type: Literal["output_audio_buffer.clear"] = "output_audio_buffer.clear"
    event_id: str | None = None


class InputAudioBufferClear(WireModel):
    type: Literal["input_audio_buffer.clear"] = "input_audio_buffer.clear"
    event_id: str | None = None


ClientEvent = (
    SessionUpdate
    | ConversationItemCreate
    | ResponseCreate
    | ResponseCancel
    | OutputAudioBufferClear
    | InputAudioBufferClear
)

# Every client event class, for conformance tests and the events file.
CLIENT_EVENT_TYPES: tuple[type[WireModel], ...] = (
    SessionUpdate,
    ConversationItemCreate,
    ResponseCreate,
    ResponseCancel,
    OutputAudioBufferClear,
    InputAudioBufferClear,
)


def user_text(text: str) -> UserMessage:
    return UserMessage(content=[InputText(text=text)])


def assistant_text(text: str) -> AssistantMessage:
    return AssistantMessage(content=[OutputText(text=text)])
