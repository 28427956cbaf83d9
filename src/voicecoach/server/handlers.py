"""One handler per client event ``type`` (realtime-protocol.md §3), each ``(session, event, now) → outputs``.

Handlers receive events that passed the event allow-list; nested objects (``session``, ``item``,
``response``) are validated here, and any client mistake is raised as :class:`WireError`, which the session
turns into an ``error`` event that echoes the client's ``event_id``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .defaults import fill_format, merge_session
from .items import inline_id, item_from_wire
from .live_response import LiveResponse
from .outputs import Output, ReplyRequest
from .responses import Response, ResponseParams, truncate_item
from .schema import WireError
from .usage import Segment, fingerprint, text_tokens
from .validation import validate_item, validate_response_params, validate_session

if TYPE_CHECKING:
    from .session import RealtimeSession

Handler = Callable[["RealtimeSession", dict[str, Any], float], list[Output]]


def session_update(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    update = validate_session(event["session"])
    if update["type"] != s.session["type"]:
        # UNCONFIRMED: the real answer to switching a session's type is not recorded (realtime-protocol.md);
        # the type is fixed by the URL (?intent=transcription) or the key, so say which one this session takes.
        raise WireError(
            "invalid_value",
            f"Invalid value: '{update['type']}'. This is a '{s.session['type']}' session: its type cannot change.",
            "session.type",
        )
    voice = update.get("audio", {}).get("output", {}).get("voice")
    if voice is not None and voice != s.session["audio"]["output"]["voice"] and s.assistant_audio_produced:
        raise WireError("cannot_update_voice", "Cannot update a conversation's voice if assistant audio is present.")
    s.session = merge_session(s.session, update)
    s.input.configure(s.turn_detection)
    if s.turn_detection is None:
        s.pending_item = None
    return [s.event("session.updated", session=copy.deepcopy(s.session))]


def buffer_append(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    pcm = s.append_decoder.decode(event["audio"], s.session["audio"]["input"]["format"], "audio")
    return s.receive_audio(pcm, now)


def buffer_commit(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    out = s.receive_audio(s.append_decoder.flush(), now)  # what was appended is committed, resampler tail too
    buffered = s.input.buffered_ms
    if buffered < 100:
        raise WireError(
            "input_audio_buffer_commit_empty",
            "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
            f"but buffer only has {buffered:.2f}ms of audio.",
        )
    item_id = s.pending_item or s.ids.item()
    s.pending_item = None
    return out + s.commit(s.input.take_all(), item_id, now)


def buffer_clear(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    s.append_decoder.flush()
    s.input.clear()
    s.pending_item = None
    return [s.event("input_audio_buffer.cleared")]


def output_clear(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    return s.clear_output(now)


def item_create(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    entry = validate_item(event["item"])
    item = item_from_wire(entry, input_format=s.session["audio"]["input"]["format"], param="item", ids=s.ids)
    previous_item_id = event.get("previous_item_id")
    previous = s.conversation.add(item, previous_item_id, after=bool(previous_item_id))
    return [
        s.event("conversation.item.added", previous_item_id=previous, item=item.wire()),
        s.event("conversation.item.done", previous_item_id=previous, item=item.wire()),
    ]


def item_retrieve(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    item = s.conversation.get(event["item_id"])
    if item is None:
        raise WireError(
            "item_retrieve_invalid_item_id",
            f"Error retrieving item: the item with id '{event['item_id']}' does not exist.",
            "item_id",
        )
    return [s.event("conversation.item.retrieved", item=item.wire_with_audio())]


def item_truncate(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    item_id, index, end_ms = event["item_id"], event["content_index"], event["audio_end_ms"]
    item = s.conversation.get(item_id)
    if item is None:
        raise WireError("item_truncate_invalid_item_id", f"Item with item_id not found: {item_id}", "item_id")
    if item.role != "assistant" or item.audio is None:
        raise WireError(
            "invalid_value",
            f"Item '{item_id}' has no assistant audio; only assistant audio can be truncated.",
            "item_id",
        )
    if index >= len(item.content):
        raise WireError("invalid_value", f"Item '{item_id}' has no content at index {index}.", "content_index")
    if end_ms > item.audio_ms:
        raise WireError(
            "invalid_value", f"Audio content of {item.audio_ms}ms is already shorter than {end_ms}ms", "audio_end_ms"
        )
    truncate_item(item, end_ms * 48)
    return [s.event("conversation.item.truncated", item_id=item_id, content_index=index, audio_end_ms=end_ms)]


def item_delete(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    s.conversation.delete(event["item_id"])
    return [s.event("conversation.item.deleted", item_id=event["item_id"])]


def response_create(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    params = validate_response_params(event["response"]) if event.get("response") is not None else {}
    return s.start_response(params, now)


def response_cancel(s: RealtimeSession, event: dict[str, Any], now: float) -> list[Output]:
    wanted = event.get("response_id")
    response = s.find_response(wanted) if wanted else s.active_in_band()
    if response is None or not response.active:
        raise WireError("response_cancel_not_active", "Cancellation failed: no active response found")
    return response.cancel("client_cancelled", now, s.limiter)


def build_response(s: RealtimeSession, params: dict[str, Any], now: float) -> Response:
    """Resolve ``response.create`` parameters against the session and the conversation."""
    in_band = params.get("conversation", "auto") != "none"
    if in_band and (active := s.active_in_band()) is not None:
        raise WireError(
            "conversation_already_has_active_response",
            f"Conversation already has an active response in progress: {active.id}. "
            "Wait until the response is finished before creating a new one.",
        )
    session = s.session
    instructions = params.get("instructions", session["instructions"])
    segments = [Segment(fingerprint("instructions", instructions), text_tokens(instructions))] if instructions else []
    if "input" in params:
        segments += [
            _input_entry(s, entry, f"response.input[{i}]").segment() for i, entry in enumerate(params["input"])
        ]
    else:
        segments += [item.segment() for item in s.conversation]
    output = params.get("audio", {}).get("output", {})
    audio_format = fill_format(output.get("format", session["audio"]["output"]["format"]))
    text = s.lines.said()  # None: a live backend makes the reply (what it says)
    response_params = ResponseParams(
        text=text or "",
        modality=params.get("output_modalities", session["output_modalities"])[0],
        voice=output.get("voice", session["audio"]["output"]["voice"]),
        audio_format=audio_format,
        max_output_tokens=params.get("max_output_tokens", session["max_output_tokens"]),
        metadata=params.get("metadata"),
        conversation=s.conversation if in_band else None,
        input_segments=segments,
        # What it is compared with for ``cached_tokens``: the earlier prompt sharing the longest prefix.
        previous_segments=list(s.prompt_cache.match(segments)),
    )
    stream_audio = s.options.transport == "websocket"
    response: Response
    if text is None:
        request = ReplyRequest(
            instructions=instructions or None,
            items=_request_items(s, params),
            max_output_tokens=response_params.max_output_tokens,
            modality=response_params.modality,
            voice=str(response_params.voice),
        )
        response = LiveResponse(response_params, request, s.ids, now, stream_audio=stream_audio)
    else:
        response = Response(
            response_params,
            s.ids,
            now,
            latency=s.options.response_latency,
            speed=s.options.generation_speed,
            stream_audio=stream_audio,
        )
    s.prompt_cache.remember(segments)  # the prompt is read when the response starts, cancelled or not
    return response


def _request_items(s: RealtimeSession, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The response's input as wire items for the language model: its ``input`` (references resolved to the
    items they name, with their transcripts), or the whole conversation for an in-band response without one."""
    if "input" not in params:
        return [item.wire() for item in s.conversation]
    items: list[dict[str, Any]] = []
    for entry in params["input"]:
        if entry["type"] == "item_reference":
            found = s.conversation.get(entry["id"])
            if found is not None:  # checked by _input_entry above
                items.append(found.wire())
        else:
            items.append(copy.deepcopy(entry))
    return items


def _input_entry(s: RealtimeSession, entry: dict[str, Any], param: str) -> Any:
    if entry["type"] == "item_reference":
        item = s.conversation.get(entry["id"])
        if item is None:
            raise WireError(
                "invalid_value",
                f"Invalid '{param}.id': no item with id '{entry['id']}' in the conversation.",
                f"{param}.id",
            )
        return item
    fmt = s.session["audio"]["input"]["format"]
    return item_from_wire({**entry, "id": inline_id(entry)}, input_format=fmt, param=param, ids=s.ids)


HANDLERS: dict[str, Handler] = {
    "session.update": session_update,
    "input_audio_buffer.append": buffer_append,
    "input_audio_buffer.commit": buffer_commit,
    "input_audio_buffer.clear": buffer_clear,
    "output_audio_buffer.clear": output_clear,
    "conversation.item.create": item_create,
    "conversation.item.retrieve": item_retrieve,
    "conversation.item.truncate": item_truncate,
    "conversation.item.delete": item_delete,
    "response.create": response_create,
    "response.cancel": response_cancel,
}
