"""Protocol conformance oracle: the ``openai`` package's Realtime event models as strict pydantic adapters.

The SDK's unions carry an openai-internal discriminator marker that plain pydantic ignores, so they are
rebuilt here as real discriminated unions (testing.md "Protocol conformance oracle", realtime-protocol.md
§10.2). Strict validation catches wrong event names, missing fields and wrong types; it does not catch extra
keys (the SDK models allow them), so unknown-key checks stay with the tests.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter


def _members(union: Any) -> list[Any]:
    """The classes of a (possibly ``Annotated``) union, flattened."""
    while typing.get_origin(union) is Annotated:
        union = typing.get_args(union)[0]
    out: list[Any] = []
    for arg in typing.get_args(union):
        out.extend(_members(arg) if typing.get_args(arg) else [arg])
    return out


def _event_type(model: Any) -> str:
    field = model.model_fields["type"]
    return str(typing.get_args(field.annotation)[0])


@cache
def server_event_adapter() -> TypeAdapter[Any]:
    """Every GA server event model, plus the WebRTC-only ones, discriminated by ``type``."""
    from openai.types.realtime import RealtimeServerEvent
    from openai.types.realtime.realtime_server_event import (
        ConversationItemRetrieved,
        OutputAudioBufferCleared,
        OutputAudioBufferStarted,
        OutputAudioBufferStopped,
    )

    extra = [OutputAudioBufferStarted, OutputAudioBufferStopped, OutputAudioBufferCleared, ConversationItemRetrieved]
    members = list(dict.fromkeys([*_members(RealtimeServerEvent), *extra]))
    union: Any = Union[tuple(members)]  # noqa: UP007  # a union built at runtime from the SDK's members
    return TypeAdapter(Annotated[union, Field(discriminator="type")])


@cache
def server_event_types() -> frozenset[str]:
    """The ``type`` literals the server adapter covers."""
    from openai.types.realtime import RealtimeServerEvent

    return frozenset(_event_type(m) for m in _members(RealtimeServerEvent)) | {
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "conversation.item.retrieved",
    }


@cache
def client_event_adapter() -> TypeAdapter[Any]:
    """Every GA client event (TypedDict params, including ``response.create`` with item references)."""
    from openai.types.realtime import RealtimeClientEventParam, ResponseCreateEventWithReferencesParam

    return TypeAdapter(Union[RealtimeClientEventParam, ResponseCreateEventWithReferencesParam])  # noqa: UP007  # SDK aliases
