"""Every client event voicecoach can send is one the real API accepts, checked against the ``openai`` types.

Two checks per event:

1. strict validation through a real discriminated union of the SDK's client-event TypedDicts (wrong names,
   missing fields, wrong literals and scalar types fail), with lazily validated iterables consumed so that
   ``response.input`` items and content parts are checked too;
2. no key the SDK does not know, anywhere in the event: the real server answers ``unknown_parameter`` to
   those, while pydantic's TypedDict validation silently ignores them.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Annotated, Any, Union

import pytest
from pydantic import Field, TypeAdapter
from typing_extensions import is_typeddict  # the SDK's TypedDicts are typing_extensions ones

from voicecoach.coach.actions import Intent, Send
from voicecoach.coach.coach import Coach
from voicecoach.coach.settings import CoachSettings
from voicecoach.config import Settings
from voicecoach.protocol import client_events as ce
from voicecoach.protocol.server_events import parse_server_dict
from voicecoach.session_config import build_session

openai_realtime = pytest.importorskip("openai.types.realtime")


@cache
def strict_client_union() -> tuple[TypeAdapter[Any], dict[str, Any]]:
    """The SDK's client events as a discriminated union; ``response.create`` in its with-references form."""
    from openai.types.realtime import RealtimeClientEventParam, ResponseCreateEventWithReferencesParam

    by_type: dict[str, Any] = {}
    for member in typing.get_args(RealtimeClientEventParam):
        literal = typing.get_args(typing.get_type_hints(member)["type"])[0]
        by_type[literal] = member
    by_type["response.create"] = ResponseCreateEventWithReferencesParam  # a superset: also allows item references
    union = Annotated[Union[tuple(by_type.values())], Field(discriminator="type")]  # noqa: UP007  # built at runtime
    return TypeAdapter(union), by_type


def consume(value: Any) -> None:
    """Walk a validated value; iterating pydantic's lazy ``Iterable`` validators runs their validation."""
    if isinstance(value, dict):
        for v in value.values():
            consume(v)
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
        for v in value:
            consume(v)


def unknown_keys(value: Any, annotation: Any, path: str = "") -> Iterator[str]:
    """Keys in ``value`` that the SDK type ``annotation`` does not declare (recursively)."""
    annotation = _strip(annotation)
    if is_typeddict(annotation) and isinstance(value, dict):
        hints = typing.get_type_hints(annotation)
        for key, item in value.items():
            if key not in hints:
                yield f"{path}{key}"
            else:
                yield from unknown_keys(item, hints[key], f"{path}{key}.")
        return
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if _accepts(a, value)]
        if options:
            # The first option that explains every key wins; otherwise report against the first candidate.
            reports = [list(unknown_keys(value, a, path)) for a in options]
            yield from min(reports, key=len)
        return
    if origin is not None and isinstance(value, list):
        (inner,) = typing.get_args(annotation)[:1] or (Any,)
        for i, item in enumerate(value):
            yield from unknown_keys(item, inner, f"{path}{i}.")


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) in (Annotated, typing.Required, typing.NotRequired):
        annotation = typing.get_args(annotation)[0]
    return annotation


def _accepts(annotation: Any, value: Any) -> bool:
    annotation = _strip(annotation)
    if is_typeddict(annotation):
        if not isinstance(value, dict):
            return False
        hints = typing.get_type_hints(annotation)
        tag = hints.get("type")
        return tag is None or value.get("type") in typing.get_args(_strip(tag))
    if annotation is type(None):
        return value is None
    return not isinstance(value, dict)  # scalars, literals, lists: not a dict-shaped option


def check(event: dict[str, Any]) -> None:
    adapter, by_type = strict_client_union()
    consume(adapter.validate_python(event, strict=True))
    bad = list(unknown_keys(event, by_type[event["type"]]))
    assert not bad, f"{event['type']}: keys the API does not know: {bad}"


# --- every event the project can send ----------------------------------------------------------------------


def coach_sends() -> list[ce.WireModel]:
    """Drive a coach through every path that sends something: hints (both tiers, both window modes),
    interrupts (with and without an active response), the history replay after a reconnect."""
    sent: list[ce.WireModel] = []
    for mode in ("text", "references"):
        coach = Coach(CoachSettings(window_mode=mode, cooldown_seconds=0))
        t = 0.0

        def feed(event: dict[str, Any], coach: Coach = coach) -> None:
            nonlocal t
            t += 0.1
            sent.extend(a.event for a in coach.handle(parse_server_dict(event), t) if isinstance(a, Send))

        def press(intent: Intent, coach: Coach = coach) -> None:
            nonlocal t
            t += 0.1
            sent.extend(a.event for a in coach.command(intent, t) if isinstance(a, Send))

        coach.connect(t)
        feed({"type": "session.updated", "session": {}})
        feed({"type": "conversation.item.added", "item": {"id": "item_1", "type": "message", "role": "user"}})
        feed(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "item_1",
                "transcript": "What is our budget? Good question.",
            }
        )
        feed({"type": "response.created", "response": {"id": "resp_1", "metadata": {"voicecoach_tier": "quick"}}})
        feed({"type": "output_audio_buffer.started", "response_id": "resp_1"})
        press(Intent.INTERRUPT)  # generating: cancel + clear
        press(Intent.FULL_GUIDANCE)
        feed({"type": "response.created", "response": {"id": "resp_2", "metadata": {"voicecoach_tier": "full"}}})
        feed({"type": "output_audio_buffer.started", "response_id": "resp_2"})
        feed({"type": "response.done", "response": {"id": "resp_2", "status": "completed"}})
        press(Intent.INTERRUPT)  # generated, still playing: clear only
        coach.disconnected(t, "test")
        coach.connect(t)
        feed({"type": "session.updated", "session": {}})  # replays the history
    return sent


def session_configs() -> list[ce.WireModel]:
    settings = [
        Settings(),
        Settings(noise_reduction="off", transcription_language="de", voice="marin"),
        Settings(noise_reduction="far_field", vad_threshold=0.8),
    ]
    return [ce.SessionUpdate(session=build_session(s)) for s in settings]


ALL_EVENTS = [*coach_sends(), *session_configs(), ce.InputAudioBufferClear(), ce.ResponseCancel()]


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: e.type)  # type: ignore[attr-defined]
def test_every_client_event_is_accepted_by_the_sdk_types(event: ce.WireModel) -> None:
    check(event.to_wire())


def test_every_client_event_class_is_covered() -> None:
    assert {type(e) for e in ALL_EVENTS} == set(ce.CLIENT_EVENT_TYPES)
    sent_types = {e.type for e in coach_sends()}  # type: ignore[attr-defined]
    assert {"response.create", "response.cancel", "output_audio_buffer.clear", "conversation.item.create"} <= sent_types


def test_client_secret_request_matches_the_sdk_params() -> None:
    from openai.types.realtime import ClientSecretCreateParams

    request = ce.ClientSecretRequest(
        expires_after=ce.ExpiresAfter(seconds=600), session=build_session(Settings(), with_model=True)
    ).to_wire()
    TypeAdapter(ClientSecretCreateParams).validate_python(request, strict=True)
    assert list(unknown_keys(request, ClientSecretCreateParams)) == []
    assert request["session"]["model"] == "gpt-realtime-1.5"


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "session.update", "session": {"type": "realtime", "modalities": ["audio"]}},  # a beta field
        {"type": "session.update", "session": {"instructions": "x"}},  # session.type is required
        {
            "type": "response.create",
            "response": {
                "input": [{"type": "message", "role": "user", "content": [{"type": "input_txt", "text": "x"}]}]
            },
        },
        {"type": "response.cancle"},
        {"type": "response.create", "response": {"conversation": "none", "max_response_output_tokens": 5}},
        {
            "type": "response.create",
            "response": {
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "speaker": "x",
                        "content": [{"type": "input_text", "text": "x"}],
                    }
                ]
            },
        },
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "server_vad", "create_respons": False}}},
            },
        },
        {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0, "audio_end_ms": "1500"},
    ],
)
def test_the_oracle_itself_catches_mistakes(bad: dict[str, Any]) -> None:
    with pytest.raises((AssertionError, ValueError)):
        check(bad)
