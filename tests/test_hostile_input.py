"""Hostile input from a server: property-based tests over the parser and the coach (hypothesis).

Whatever arrives on the data channel — not JSON, not an object, unknown types, missing or ill-typed fields,
huge strings, events out of order, deltas for unknown items, duplicate ids — is logged and ignored; nothing
raises and the coach's state stays consistent.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicecoach.coach.actions import Intent, Send
from voicecoach.coach.coach import Coach
from voicecoach.coach.settings import CoachSettings
from voicecoach.coach.state import State
from voicecoach.protocol.server_events import KNOWN_TYPES, ServerEvent, parse_server_dict, parse_server_event

TYPES = [*sorted(KNOWN_TYPES), "conversation.item.created", "response.audio_transcript.delta", "mcp.x", ""]
IDS = st.sampled_from(["item_1", "item_2", "resp_1", "resp_2", "", "x" * 300])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40), IDS)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Shapes close to real events (so the typed branches are reached), with fields that may be wrong or missing.
field_values = st.one_of(scalars, json_values)
plausible = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "item_id": field_values,
        "response_id": field_values,
        "delta": st.one_of(st.text(max_size=30), st.sampled_from(["good ", "question", "got it", "stop"]), scalars),
        "transcript": st.one_of(st.sampled_from(["good question", "got it", "walk me through it"]), scalars),
        "item": st.one_of(
            st.fixed_dictionaries(
                {"id": IDS, "type": st.just("message"), "role": st.sampled_from(["user", "assistant", 7])}
            ),
            field_values,
        ),
        "response": st.one_of(
            st.fixed_dictionaries(
                {"id": IDS},
                optional={
                    "status": st.sampled_from(["completed", "cancelled", "failed", None]),
                    "metadata": st.one_of(st.none(), st.just({"voicecoach_tier": "quick"}), field_values),
                    "usage": st.one_of(st.none(), st.just({"input_tokens": 5, "output_tokens": -3}), field_values),
                },
            ),
            field_values,
        ),
        "error": st.one_of(
            st.fixed_dictionaries(
                {"message": st.text(max_size=20), "code": st.sampled_from(["x", None, "session_expired"])}
            ),
            field_values,
        ),
        "session": field_values,
        "previous_item_id": field_values,
    },
)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_parser_never_raises_on_any_text(text: str) -> None:
    event = parse_server_event(text)
    assert event is not None


@given(json_values)
def test_parser_never_raises_on_any_json(value: Any) -> None:
    assert parse_server_event(json.dumps(value)) is not None


@given(plausible)
def test_parser_never_raises_on_plausible_but_broken_events(value: dict[str, Any]) -> None:
    assert parse_server_dict(value) is not None


intents = st.sampled_from(list(Intent)).filter(lambda i: i is not Intent.QUIT)
steps = st.lists(st.one_of(plausible.map(lambda e: ("event", e)), intents.map(lambda i: ("intent", i))), max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_coach_survives_any_event_sequence_and_stays_consistent(sequence: list[tuple[str, Any]]) -> None:
    coach = Coach(CoachSettings(cooldown_seconds=0.5))
    now = 0.0
    coach.connect(now)
    coach.handle(parse_server_dict({"type": "session.updated", "session": {}}), now)
    for kind, payload in sequence:
        now += 0.05
        if kind == "event":
            event: ServerEvent = parse_server_dict(payload)
            actions = coach.handle(event, now)
        else:
            actions = coach.command(payload, now)
        for action in actions:
            if isinstance(action, Send):
                # Whatever the coach was fed, what it sends is a well-formed client event (it round-trips).
                wire = action.event.to_wire()
                assert type(action.event).model_validate(wire) == action.event
        assert coach.state in State
        if coach.state is State.SPEAKING:
            assert coach._hints.speaking is not None
    assert len(coach.conversation) <= 2000


def test_ten_thousand_generated_hostile_messages() -> None:
    """The issue's figure: 10,000 hostile messages through parser and coach, no crash, consistent state."""
    import random

    rng = random.Random(1234)
    coach = Coach(CoachSettings(cooldown_seconds=0.2))
    coach.connect(0.0)
    coach.handle(parse_server_dict({"type": "session.updated", "session": {}}), 0.0)
    kinds = sorted(KNOWN_TYPES)
    junk = [
        "",
        "{",
        "null",
        "[]",
        '"x"',
        "{}",
        '{"type":null}',
        "\x00\xff",
        "9" * 5000,
        '{"type":"' + "a" * 70000 + '"}',
    ]
    for n in range(10_000):
        roll = rng.random()
        if roll < 0.3:
            text = rng.choice(junk)
        else:
            event: dict[str, Any] = {"type": rng.choice(kinds)}
            for key in ("item_id", "response_id", "delta", "transcript", "item", "response", "error"):
                if rng.random() < 0.5:
                    event[key] = rng.choice(
                        [None, 1, "item_1", "good question", "got it", {"id": "resp_1"}, {"id": 3}, [], {"message": 2}]
                    )
            text = json.dumps(event)
        coach.handle(parse_server_event(text), n * 0.01)
    assert coach.state in (State.LISTENING, State.SPEAKING, State.MUTED)
