"""The hint request's layout for the prompt cache: instructions, then the context, then the window; and the
who-is-who instructions once the call's audio is captured. Pure: the coach, its actions and the wire form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from voicecoach.coach.actions import Intent, Send
from voicecoach.coach.coach import Coach
from voicecoach.coach.hints import CONTEXT_PREFACE, who_is_who
from voicecoach.coach.settings import CoachSettings, WindowMode
from voicecoach.protocol import client_events as ce
from voicecoach.protocol.server_events import parse_server_dict

CONTEXT = "## cv.md\nTen years of payments backends; led the move to event sourcing at Acme.\n" * 40


class Run:
    """A live coach that has heard some lines; ``ask`` returns the wire form of the hint request it sends."""

    def __init__(self, settings: CoachSettings | None = None, **coach: Any) -> None:
        self.coach = Coach(settings or CoachSettings(cooldown_seconds=0), **coach)
        self.t = 0.0
        self.lines = 0
        self.coach.connect(self.t)
        self.feed({"type": "session.updated", "session": {}})

    def feed(self, event: dict[str, Any]) -> list[Send]:
        self.t += 0.1
        return [a for a in self.coach.handle(parse_server_dict(event), self.t) if isinstance(a, Send)]

    def say(self, text: str) -> None:
        self.lines += 1
        item = f"item_{self.lines}"
        self.feed({"type": "conversation.item.added", "item": {"id": item, "type": "message", "role": "user"}})
        self.feed(
            {"type": "conversation.item.input_audio_transcription.completed", "item_id": item, "transcript": text}
        )

    def ask(self, intent: Intent = Intent.QUICK_HINT) -> dict[str, Any]:
        self.t += 0.1
        sent = [a.event for a in self.coach.command(intent, self.t) if isinstance(a, Send)]
        [request] = [e for e in sent if isinstance(e, ce.ResponseCreate)]
        wire: dict[str, Any] = request.to_wire()
        return wire


def common_prefix(a: str, b: str) -> int:
    """How many leading characters ``a`` and ``b`` share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


@pytest.mark.parametrize("mode", ["text", "references"])
def test_the_context_goes_first_and_is_byte_identical_across_hints(mode: WindowMode) -> None:
    run = Run(CoachSettings(cooldown_seconds=0, window_mode=mode), context_text=CONTEXT)
    run.say("Tell me about a hard migration.")
    first = run.ask()
    run.say("And how did you measure it?")
    second = run.ask()
    text = f"{CONTEXT_PREFACE}\n\n{CONTEXT}"
    context_item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    assert first["response"]["input"][0] == second["response"]["input"][0] == context_item
    assert first["response"]["instructions"] == second["response"]["instructions"]
    # The serialized requests (less the event id, which is no part of the prompt) are the same bytes up to the
    # end of the context message, and differ right after it, in the window.
    a, b = (json.dumps(w["response"], separators=(",", ":")) for w in (first, second))
    through_context = len('{"conversation":"none","input":[') + len(json.dumps(context_item, separators=(",", ":")))
    assert common_prefix(a, b) >= through_context
    assert first["response"]["input"][1:] != second["response"]["input"][1:]


def test_no_context_no_context_message_and_reconfigure_keeps_or_replaces_it() -> None:
    run = Run()
    run.say("Hello there.")
    [window] = run.ask()["response"]["input"]
    assert window["content"][0]["text"].startswith("Transcript of the conversation so far")
    run.coach.reconfigure(CoachSettings(cooldown_seconds=0), context_text=CONTEXT)
    assert run.ask()["response"]["input"][0]["content"][0]["text"].endswith(CONTEXT)
    run.coach.reconfigure(CoachSettings(cooldown_seconds=0, quick_window=1))  # None: the context stays
    assert len(run.ask()["response"]["input"]) == 2 and run.coach.context_text == CONTEXT
    run.coach.reconfigure(CoachSettings(cooldown_seconds=0), context_text="")
    assert len(run.ask()["response"]["input"]) == 1


def test_without_the_calls_audio_the_instructions_are_the_tiers_own() -> None:
    settings = CoachSettings(cooldown_seconds=0, them_label="Interviewer")
    run = Run(settings)
    assert run.ask()["response"]["instructions"] == settings.quick_instructions
    assert run.ask(Intent.FULL_GUIDANCE)["response"]["instructions"] == settings.full_instructions


def test_with_the_calls_audio_the_instructions_say_who_is_who_and_stay_fixed() -> None:
    settings = CoachSettings(cooldown_seconds=0, them_label="Interviewer")
    run = Run(settings)
    run.coach.channel_started("them", None)  # the runner's them link is up: the call's audio is captured
    run.say("Thanks, go on.")
    first = run.ask()["response"]["instructions"]
    run.say("Right.")
    assert run.ask()["response"]["instructions"] == first  # a fixed suffix: the cached prefix survives
    assert first.startswith(settings.quick_instructions)
    suffix = first.removeprefix(settings.quick_instructions)
    assert '"You" is the person you are coaching' in suffix and '"Interviewer" is the other side' in suffix
    assert '"Interviewer" said asks the person something, answer it for them' in suffix
    assert "own voice (first person)" in suffix and "short enough to say aloud" in suffix
    full = run.ask(Intent.FULL_GUIDANCE)["response"]["instructions"]
    assert full == f"{settings.full_instructions}\n\n{who_is_who('full', 'Interviewer')}"
    run.coach.them_disconnected(run.t, "test")  # a lost link does not flip the prefix back
    assert run.ask()["response"]["instructions"] == first
    run.coach.reconfigure(settings.model_copy(update={"them_label": "Client"}))
    assert '"Client" is the other side' in run.ask()["response"]["instructions"]


def test_the_runner_can_say_at_start_that_the_call_is_captured() -> None:
    settings = CoachSettings(cooldown_seconds=0)
    assert Run(settings, them_capture=True).ask()["response"]["instructions"] != settings.quick_instructions
    run = Run(settings)
    run.coach.handle_them(parse_server_dict({"type": "session.updated", "session": {}}), 1.0)
    assert run.coach.them_captured
    assert '"Them" is the other side' in run.ask()["response"]["instructions"]


@pytest.mark.parametrize("mode", ["text", "references"])
def test_requests_with_context_and_labels_are_accepted_by_the_sdk_types(mode: WindowMode) -> None:
    pytest.importorskip("openai.types.realtime")
    from tests.test_conformance_client import check

    run = Run(CoachSettings(cooldown_seconds=0, window_mode=mode, them_label="Interviewer"), context_text=CONTEXT)
    run.coach.channel_started("them", None)
    run.say("What is our budget?")
    run.coach.handle_them(
        parse_server_dict(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "item_them_1",
                "transcript": "Why did you leave Acme?",
            }
        ),
        run.t,
    )
    for intent in (Intent.QUICK_HINT, Intent.FULL_GUIDANCE):
        wire = run.ask(intent)
        assert wire["response"]["input"][0]["content"][0]["text"].startswith(CONTEXT_PREFACE)
        check(wire)
