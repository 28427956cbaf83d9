"""The allow-lists of the GA Realtime API: session objects, response parameters, conversation items, events.

Derived from the openai SDK's ``*Param`` TypedDicts (realtime-protocol.md §1.1, §3, §10.2) but kept here as
data, because the server is part of the product and the SDK is a test-only dependency. Anything not listed is
rejected with ``unknown_parameter`` (beta names such as ``session.modalities`` included), exactly as the real
server does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .catalog import Model, TranscriptionModel, Voice
from .schema import (
    AnyValue,
    Bool,
    Enum,
    Int,
    ListOf,
    Map,
    Nullable,
    Num,
    Obj,
    OneOf,
    Spec,
    Str,
    Tagged,
    WireError,
    invalid_value,
    missing_parameter,
)

_FORMAT = Tagged(
    {
        "audio/pcm": Obj({"type": Str(), "rate": Int(minimum=24000, maximum=24000)}),
        "audio/pcmu": Obj({"type": Str()}),
        "audio/pcma": Obj({"type": Str()}),
    },
    default="audio/pcm",
)
_NOISE = Nullable(Obj({"type": Enum(("near_field", "far_field"))}, required=("type",)))
_TRANSCRIPTION = Nullable(
    Obj(
        {
            "model": TranscriptionModel(),
            "language": Nullable(Str()),
            "languages": Nullable(ListOf(Str())),
            "prompt": Nullable(Str()),
            "keywords": Nullable(ListOf(Str())),
            "delay": Enum(("minimal", "low", "medium", "high", "xhigh")),
        }
    )
)
_TURN_DETECTION = Nullable(
    Tagged(
        {
            "server_vad": Obj(
                {
                    "type": Str(),
                    "threshold": Num(0.0, 1.0),
                    "prefix_padding_ms": Int(minimum=0),
                    "silence_duration_ms": Int(minimum=0),
                    "idle_timeout_ms": Nullable(Int(minimum=0)),
                    "create_response": Bool(),
                    "interrupt_response": Bool(),
                }
            ),
            "semantic_vad": Obj(
                {
                    "type": Str(),
                    "eagerness": Enum(("low", "medium", "high", "auto")),
                    "create_response": Bool(),
                    "interrupt_response": Bool(),
                }
            ),
        }
    )
)
_VOICE = Voice()
_MAX_TOKENS = OneOf((Enum(("inf",)), Int(1, 4096)))
_TOOL = Tagged(
    {
        "function": Obj(
            {"type": Str(), "name": Str(), "description": Str(), "parameters": AnyValue()}, required=("name",)
        ),
        "mcp": Obj(
            {
                "type": Str(),
                "server_label": Str(),
                "server_url": Str(),
                "connector_id": Str(),
                "authorization": Str(),
                "headers": Nullable(AnyValue()),
                "allowed_tools": Nullable(AnyValue()),
                "require_approval": Nullable(AnyValue()),
                "server_description": Str(),
                "tunnel_id": Str(),
            },
            required=("server_label",),
        ),
    }
)
_TOOL_CHOICE = OneOf(
    (
        Tagged(
            {
                "function": Obj({"type": Str(), "name": Str()}, required=("name",)),
                "mcp": Obj({"type": Str(), "server_label": Str(), "name": Nullable(Str())}, required=("server_label",)),
            }
        ),
        Enum(("none", "auto", "required")),
    )
)
_TRACING = Nullable(
    OneOf(
        (
            Obj({"group_id": Str(), "metadata": AnyValue(), "workflow_name": Str()}),
            Enum(("auto",)),
        )
    )
)
_TRUNCATION = OneOf(
    (
        Obj(
            {
                "type": Enum(("retention_ratio",)),
                "retention_ratio": Num(0.0, 1.0),
                "token_limits": Obj({"post_instructions": Int(minimum=0)}),
            },
            required=("type", "retention_ratio"),
        ),
        Enum(("auto", "disabled")),
    )
)
_MODALITIES = ListOf(Enum(("text", "audio")))

SESSION = Obj(
    {
        "type": Enum(("realtime", "transcription")),
        "model": Model(),
        "instructions": Str(),
        "output_modalities": _MODALITIES,
        "audio": Obj(
            {
                "input": Obj(
                    {
                        "format": _FORMAT,
                        "noise_reduction": _NOISE,
                        "transcription": _TRANSCRIPTION,
                        "turn_detection": _TURN_DETECTION,
                    }
                ),
                "output": Obj({"format": _FORMAT, "speed": Num(0.25, 1.5), "voice": _VOICE}),
            }
        ),
        "include": Nullable(ListOf(Enum(("item.input_audio_transcription.logprobs",)))),
        "max_output_tokens": _MAX_TOKENS,
        "parallel_tool_calls": Bool(),
        "prompt": Nullable(Obj({"id": Str(), "variables": AnyValue(), "version": Nullable(Str())}, required=("id",))),
        "reasoning": Obj({"effort": Nullable(Enum(("minimal", "low", "medium", "high", "xhigh")))}),
        "tool_choice": _TOOL_CHOICE,
        "tools": ListOf(_TOOL),
        "tracing": _TRACING,
        "truncation": _TRUNCATION,
    },
    required=("type",),
)

# A transcription-only session (``?intent=transcription``, next-wave.md §2.1): input audio only, no model, no
# output, no instructions (the SDK's RealtimeTranscriptionSessionCreateRequestParam); anything else is unknown.
TRANSCRIPTION_SESSION = Obj(
    {
        "type": Enum(("realtime", "transcription")),
        "audio": Obj(
            {
                "input": Obj(
                    {
                        "format": _FORMAT,
                        "noise_reduction": _NOISE,
                        "transcription": _TRANSCRIPTION,
                        "turn_detection": _TURN_DETECTION,
                    }
                )
            }
        ),
        "include": Nullable(ListOf(Enum(("item.input_audio_transcription.logprobs",)))),
    },
    required=("type",),
)

# --- conversation items (§3.6) ------------------------------------------------------------------------------

_ITEM_COMMON: dict[str, Spec] = {
    "id": Str(max_length=64),
    "object": Enum(("realtime.item",)),
    "status": Enum(("completed", "incomplete", "in_progress")),
}
_USER_PART = Tagged(
    {
        "input_text": Obj({"type": Str(), "text": Str()}, required=("text",)),
        "input_audio": Obj({"type": Str(), "audio": Nullable(Str()), "transcript": Nullable(Str())}),
        "input_image": Obj(
            {"type": Str(), "image_url": Str(), "detail": Enum(("auto", "low", "high"))}, required=("image_url",)
        ),
    }
)
_SYSTEM_PART = Tagged({"input_text": Obj({"type": Str(), "text": Str()}, required=("text",))})
# The real server rejects assistant audio in conversation.item.create by asking for ``text`` (observed:
# "Missing required parameter: 'item.content[0].text'" for an output_audio part), so both variants need text.
_ASSISTANT_PART = Tagged(
    {
        "output_text": Obj({"type": Str(), "text": Str()}, required=("text",)),
        "output_audio": Obj(
            {"type": Str(), "text": Str(), "transcript": Nullable(Str()), "audio": Nullable(Str())}, required=("text",)
        ),
    }
)


class _Message(Spec):
    """A message item: the allowed content part types depend on the role."""

    _roles: ClassVar[dict[str, Spec]] = {"user": _USER_PART, "system": _SYSTEM_PART, "assistant": _ASSISTANT_PART}

    def check(self, value: Any, param: str) -> Any:
        role = value.get("role")
        if role is None:
            raise missing_parameter(f"{param}.role")
        if role not in self._roles:
            raise invalid_value(f"{param}.role", role, tuple(self._roles))
        spec = Obj(
            {**_ITEM_COMMON, "type": Str(), "role": Str(), "content": ListOf(self._roles[role])},
            required=("content",),
        )
        return spec.check(value, param)


ITEM = Tagged(
    {
        "message": _Message(),
        "function_call": Obj(
            {**_ITEM_COMMON, "type": Str(), "call_id": Str(), "name": Str(), "arguments": Str()},
            required=("name", "arguments"),
        ),
        "function_call_output": Obj(
            {**_ITEM_COMMON, "type": Str(), "call_id": Str(), "output": Str()}, required=("call_id", "output")
        ),
    }
)

# --- response.create (§3.10) ---------------------------------------------------------------------------------

_INPUT_ENTRY = Tagged(
    {
        **ITEM.variants,
        "item_reference": Obj({"type": Str(), "id": Str()}, required=("id",)),
    }
)

RESPONSE = Obj(
    {
        "audio": Obj({"output": Obj({"format": _FORMAT, "voice": _VOICE})}),
        "conversation": Enum(("auto", "none")),
        "input": ListOf(_INPUT_ENTRY),
        "instructions": Str(),
        "max_output_tokens": _MAX_TOKENS,
        "metadata": Nullable(Map()),
        "output_modalities": _MODALITIES,
        "parallel_tool_calls": Bool(),
        "prompt": Nullable(Obj({"id": Str(), "variables": AnyValue(), "version": Nullable(Str())}, required=("id",))),
        "reasoning": Obj({"effort": Nullable(Enum(("minimal", "low", "medium", "high", "xhigh")))}),
        "tool_choice": _TOOL_CHOICE,
        "tools": ListOf(_TOOL),
    }
)

# --- client events (§3) --------------------------------------------------------------------------------------

_EVENT_ID = Str(max_length=512)
EVENTS: dict[str, Obj] = {
    "session.update": Obj({"type": Str(), "event_id": _EVENT_ID, "session": AnyValue()}, required=("session",)),
    "input_audio_buffer.append": Obj({"type": Str(), "event_id": _EVENT_ID, "audio": Str()}, required=("audio",)),
    "input_audio_buffer.commit": Obj({"type": Str(), "event_id": _EVENT_ID}),
    "input_audio_buffer.clear": Obj({"type": Str(), "event_id": _EVENT_ID}),
    "output_audio_buffer.clear": Obj({"type": Str(), "event_id": _EVENT_ID}),
    "conversation.item.create": Obj(
        {"type": Str(), "event_id": _EVENT_ID, "previous_item_id": Nullable(Str()), "item": AnyValue()},
        required=("item",),
    ),
    "conversation.item.retrieve": Obj({"type": Str(), "event_id": _EVENT_ID, "item_id": Str()}, required=("item_id",)),
    "conversation.item.truncate": Obj(
        {
            "type": Str(),
            "event_id": _EVENT_ID,
            "item_id": Str(),
            "content_index": Int(minimum=0),
            "audio_end_ms": Int(minimum=0),
        },
        required=("item_id", "content_index", "audio_end_ms"),
    ),
    "conversation.item.delete": Obj({"type": Str(), "event_id": _EVENT_ID, "item_id": Str()}, required=("item_id",)),
    "response.create": Obj({"type": Str(), "event_id": _EVENT_ID, "response": AnyValue()}),
    "response.cancel": Obj({"type": Str(), "event_id": _EVENT_ID, "response_id": Str()}),
}

# --- checks beyond the allow-lists ------------------------------------------------------------------------


def validate_session(session: Any, param: str = "session") -> dict[str, Any]:
    """Check a client ``session`` object (realtime or transcription, by its ``type``); raises
    :class:`WireError` with the real server's code and param."""
    if isinstance(session, dict) and session.get("type") == "transcription":
        transcription: dict[str, Any] = TRANSCRIPTION_SESSION.check(session, param)
        return transcription
    checked: dict[str, Any] = SESSION.check(session, param)
    modalities = checked.get("output_modalities")
    if modalities is not None and sorted(set(modalities)) not in (["audio"], ["text"]):
        raise WireError(
            "invalid_value",
            f"Invalid modalities: {modalities}. Supported combinations are: ['text'] and ['audio'].",
            f"{param}.output_modalities",
        )
    return checked


def validate_response_params(params: Any) -> dict[str, Any]:
    checked: dict[str, Any] = RESPONSE.check(params, "response")
    modalities = checked.get("output_modalities")
    if modalities is not None and sorted(set(modalities)) not in (["audio"], ["text"]):
        raise WireError(
            "invalid_value",
            f"Invalid modalities: {modalities}. Supported combinations are: ['text'] and ['audio'].",
            "response.output_modalities",
        )
    return checked


def validate_item(item: Any, param: str = "item") -> dict[str, Any]:
    checked: dict[str, Any] = ITEM.check(item, param)
    return checked
