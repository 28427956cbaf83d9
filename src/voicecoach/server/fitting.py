"""Server events versus the data channel's ``max-message-size``: split what the protocol lets us split.

An SCTP data channel refuses a message larger than the peer's ``a=max-message-size`` (65 536 bytes when the
offer says nothing, realtime-protocol.md §2.3; aiortc offers 262 144). The server must never drop such an event
silently. Streaming deltas are split into several deltas of the same kind, which a client concatenates as it
would any other run of deltas; anything else that does not fit is replaced by an ``error`` event (the caller
logs it). Sans-I/O: the caller sends the texts.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .ids import IdFactory

# The events whose ``delta`` is a piece of a longer text: several deltas in a row mean the same as one.
SPLITTABLE = frozenset(
    {
        "response.output_audio_transcript.delta",
        "response.output_text.delta",
        "conversation.item.input_audio_transcription.delta",
        "response.function_call_arguments.delta",
    }
)
RFC_DEFAULT_MAX_MESSAGE_SIZE = 65536  # RFC 8841 §6: the size to assume when the SDP does not say
_MAX_MESSAGE_SIZE = re.compile(r"^a=max-message-size:(\d+)\s*$", re.MULTILINE)
_WORST_EVENT_ID = "event_" + "x" * 21
_WORST_OBFUSCATION = "x" * 16  # IdFactory.obfuscation() is at most 16 characters

Wire = list[tuple[dict[str, Any], str]]  # (event, its JSON text) in sending order


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def size(text: str) -> int:
    """Bytes on the data channel (text messages are UTF-8)."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def max_message_size(offer_sdp: str) -> int | None:
    """The largest message the offering peer accepts; None when it has no limit (``a=max-message-size:0``)."""
    match = _MAX_MESSAGE_SIZE.search(offer_sdp)
    value = int(match[1]) if match else RFC_DEFAULT_MAX_MESSAGE_SIZE
    return value or None


def fit_event(event: dict[str, Any], limit: int | None, ids: IdFactory) -> Wire | None:
    """The event as messages of at most ``limit`` bytes each; None when it is too large and cannot be split.

    A split delta keeps its ``event_id`` on the first piece; the others get new ids (and new ``obfuscation``
    padding, where the event has one), as separate server events do.
    """
    text = encode(event)
    if limit is None or size(text) <= limit:
        return [(event, text)]
    if event.get("type") not in SPLITTABLE or not isinstance(event.get("delta"), str):
        return None
    worst = {**event, "event_id": _WORST_EVENT_ID, "delta": ""}
    if "obfuscation" in event:
        worst["obfuscation"] = _WORST_OBFUSCATION
    budget = limit - size(encode(worst))
    pieces = _split(event["delta"], budget)
    if pieces is None:
        return None
    wire: Wire = []
    for index, piece in enumerate(pieces):
        part = {**event, "delta": piece}
        if index:
            part["event_id"] = ids.event()
            if "obfuscation" in event:
                part["obfuscation"] = ids.obfuscation()
        part_text = encode(part)
        if size(part_text) > limit:  # cannot happen with the worst-case budget; never send what would be refused
            return None
        wire.append((part, part_text))
    return wire


def _split(text: str, budget: int) -> list[str] | None:
    """``text`` in pieces whose JSON string bodies take at most ``budget`` bytes each (None: budget too small)."""
    if budget < 6:  # the longest JSON form of one character is 6 bytes (\\u001f)
        return None
    pieces: list[str] = []
    start, used = 0, 0
    for index, char in enumerate(text):
        cost = _cost(char)
        if used + cost > budget:
            pieces.append(text[start:index])
            start, used = index, 0
        used += cost
    pieces.append(text[start:])
    return pieces


def _cost(char: str) -> int:
    if char in '"\\' or ord(char) < 0x20:
        return len(json.dumps(char)) - 2
    return len(char.encode("utf-8", errors="surrogatepass"))


def too_large_error(event: dict[str, Any], length: int, limit: int, ids: IdFactory) -> dict[str, Any]:
    """The ``error`` event sent instead of an event that does not fit (the real API's error shape, §8)."""
    return {
        "type": "error",
        "event_id": ids.event(),
        "error": {
            "type": "server_error",
            "code": None,
            "message": f"The server could not send a '{event.get('type')}' event of {length} bytes: the data "
            f"channel accepts messages of at most {limit} bytes (a=max-message-size).",
            "param": None,
            "event_id": None,
        },
    }
