"""Generated hostile server messages, for sending over a real data channel (deterministic for a seed).

Every kind the client must shrug off: not JSON, not an object, binary frames, unknown types, known types with
missing or ill-typed fields, huge messages (up to the channel's limit), events out of order, deltas and
"done" events for items and responses that do not exist, and the same ids over and over.

Left out on purpose: ``error`` events whose code really ends or renews a session (``session_expired``,
``invalid_api_key``, ``insufficient_quota``): those are the server's word, not garbage, and the client obeys them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

from voicecoach.protocol.server_events import BETA_TO_GA, KNOWN_TYPES

# Under aiortc's max-message-size (262144) with room for the JSON around it.
HUGE = 250_000
CONTROL_ERRORS = frozenset({"session_expired", "invalid_api_key", "insufficient_quota"})

_JUNK: list[str | bytes] = [
    "",
    " ",
    "{",
    "}",
    "null",
    "true",
    "42",
    "-1e999",
    '"just a string"',
    "[]",
    "[1, 2, 3]",
    "{}",
    '{"type": null}',
    '{"type": 5}',
    '{"type": ["session.updated"]}',
    '{"type": {"nested": true}}',
    '{"type": "error"',
    "\x00\x01\x02",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "[" * 5_000,  # deep nesting: over the parser's recursion limit
    b"\xff\xfe\xfd",
    b'{"type": "session.updated", "session": {}}',  # valid JSON in a binary frame
    bytes(range(256)),
]
_IDS: list[Any] = ["item_1", "item_2", "resp_1", "resp_2", "", "x" * 300, "item_dup", "resp_dup", None, 7, [], {}]
_TEXT = ["good", " question", "got it", "stop", "", "walk me through it", "\u202e\u0000", "word " * 50]


def _value(rng: random.Random) -> Any:
    return rng.choice(
        [None, True, 0, -3, 2**70, 1.5, float("nan"), "", "x", [], {}, [1, "a"], {"id": 3}, *_IDS, *_TEXT]
    )


def _known(rng: random.Random, kinds: list[str]) -> dict[str, Any]:
    """A known (or beta-named) type with plausible fields that may be missing, wrong, or point nowhere."""
    kind = rng.choice(kinds)
    event: dict[str, Any] = {"type": kind}
    if rng.random() < 0.5:
        event["event_id"] = rng.choice(["event_dup", _value(rng)])
    fields: dict[str, Callable[[], Any]] = {
        "item_id": lambda: rng.choice(_IDS),
        "response_id": lambda: rng.choice(_IDS),
        "previous_item_id": lambda: rng.choice(_IDS),
        "delta": lambda: rng.choice(_TEXT),
        "transcript": lambda: rng.choice(_TEXT),
        "item": lambda: rng.choice(
            [
                {"id": rng.choice(_IDS), "type": "message", "role": rng.choice(["user", "assistant", "system", 5])},
                _value(rng),
            ]
        ),
        "response": lambda: rng.choice(
            [
                {
                    "id": rng.choice(_IDS),
                    "status": rng.choice(["completed", "cancelled", "failed", "in_progress", None, 3]),
                    "metadata": rng.choice([None, {"voicecoach_tier": "quick"}, {"voicecoach_tier": 9}, "m"]),
                    "usage": rng.choice([None, {"input_tokens": 5, "output_tokens": -3}, {"total_tokens": "many"}]),
                },
                _value(rng),
            ]
        ),
        "error": lambda: rng.choice(
            [{"message": rng.choice(_TEXT), "code": rng.choice(["invalid_value", None, "x", 4])}, _value(rng)]
        ),
        "session": lambda: rng.choice([{}, {"type": "realtime"}, _value(rng)]),
        "audio_start_ms": lambda: _value(rng),
    }
    for name, make in fields.items():
        if rng.random() < 0.4:
            event[name] = make()
    return event


def hostile_messages(count: int, seed: int = 6) -> Iterator[str | bytes]:
    """``count`` hostile messages (text or bytes), each under the data channel's size limit."""
    rng = random.Random(seed)
    kinds = [*sorted(KNOWN_TYPES), *sorted(BETA_TO_GA)]
    for n in range(count):
        roll = rng.random()
        message: Any
        if roll < 0.2:
            message = rng.choice(_JUNK)
        elif roll < 0.3:
            message = {"type": rng.choice(["mcp.list_tools", "response.frobnicated", "", " ", "x" * 1000])}
            message |= {"payload": _value(rng)}
        else:
            message = _known(rng, kinds)
        if n % 2500 == 1250:
            # A few huge ones (aiortc moves about 1 MB/s over loopback; a handful proves the point).
            if n % 5000 == 1250:
                message = {"type": "conversation.item.input_audio_transcription.delta", "item_id": "item_2"}
                message["delta"] = "a" * (HUGE - len(json.dumps(message)) - 20)
            else:
                message = {"type": "response.frobnicated", "blob": "b" * (HUGE - 50)}
        if isinstance(message, dict):
            if n % 97 == 0:
                # Out of order and duplicated: the "done" of something that never started, same ids every time.
                message = {"type": "response.done", "response": {"id": "resp_dup", "status": "completed"}}
            text = json.dumps(message, allow_nan=True)
            yield text.encode() if rng.random() < 0.05 else text
        else:
            yield message
