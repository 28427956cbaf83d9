"""The pure coach, driven with explicit ``now``: triggers, tiers, windows, interrupts, mute, self-hearing."""

from __future__ import annotations

from typing import Any

import pytest

from voicecoach.coach.actions import (
    Action,
    ExpectAudio,
    FlushPlayback,
    Intent,
    Interrupted,
    Metric,
    Notice,
    OpenMic,
    Send,
    SetMicMuted,
    StatusChanged,
    TranscriptChanged,
)
from voicecoach.coach.coach import Coach
from voicecoach.coach.settings import CoachSettings
from voicecoach.coach.state import State
from voicecoach.protocol import client_events as ce
from voicecoach.protocol.server_events import parse_server_dict


def ev(type_: str, **fields: Any) -> Any:
    return parse_server_dict({"type": type_, **fields})


def sends(actions: list[Action]) -> list[ce.ClientEvent]:
    return [a.event for a in actions if isinstance(a, Send)]


def creates(actions: list[Action]) -> list[ce.ResponseCreate]:
    return [e for e in sends(actions) if isinstance(e, ce.ResponseCreate)]


class Driver:
    """A live coach plus helpers that speak for the server."""

    def __init__(self, settings: CoachSettings | None = None) -> None:
        self.coach = Coach(settings or CoachSettings(cooldown_seconds=2.0))
        self.now = 100.0
        self.items = 0
        self.coach.connect(self.now)
        self.ready = self.coach.handle(ev("session.updated", session={"type": "realtime"}), self.now)

    def tick(self, seconds: float = 0.1) -> float:
        self.now += seconds
        return self.now

    def say(self, *deltas: str, final: str | None = None) -> list[Action]:
        """One user utterance: item added, streamed deltas, completed transcript."""
        self.items += 1
        item = f"item_u{self.items}"
        out = self.coach.handle(
            ev("conversation.item.added", item={"id": item, "type": "message", "role": "user", "content": []}),
            self.tick(),
        )
        for d in deltas:
            out += self.coach.handle(
                ev("conversation.item.input_audio_transcription.delta", item_id=item, delta=d), self.tick()
            )
        text = final if final is not None else "".join(deltas)
        out += self.coach.handle(
            ev("conversation.item.input_audio_transcription.completed", item_id=item, transcript=text), self.tick()
        )
        return out

    def server_starts(self, response_id: str, tier: str = "quick") -> list[Action]:
        response = {"id": response_id, "status": "in_progress", "metadata": {"voicecoach_tier": tier}}
        out = self.coach.handle(ev("response.created", response=response), self.tick())
        out += self.coach.handle(
            ev("response.output_audio_transcript.delta", response_id=response_id, item_id="item_c", delta="Say "),
            self.tick(),
        )
        out += self.coach.handle(ev("output_audio_buffer.started", response_id=response_id), self.tick())
        return out

    def server_done(self, response_id: str, status: str = "completed") -> list[Action]:
        usage = {
            "total_tokens": 300,
            "input_tokens": 100,
            "output_tokens": 200,
            "input_token_details": {"text_tokens": 100, "audio_tokens": 0},
            "output_token_details": {"text_tokens": 20, "audio_tokens": 180},
        }
        response = {"id": response_id, "status": status, "usage": usage}
        return self.coach.handle(ev("response.done", response=response), self.tick())


def test_session_updated_makes_it_listen_and_opens_the_mic() -> None:
    d = Driver()
    assert d.coach.state is State.LISTENING
    assert any(isinstance(a, OpenMic) for a in d.ready)
    assert StatusChanged(State.LISTENING, State.CONNECTING) in d.ready


@pytest.mark.parametrize(
    "deltas",
    [
        ("Good question!",),
        ("good, question",),
        ("That is a ", "good", " quest", "ion. Hmm"),
        ("GOOD   QUESTION",),
    ],
)
def test_quick_hint_phrase_variants(deltas: tuple[str, ...]) -> None:
    d = Driver()
    out = d.say(*deltas)
    [request] = creates(out)
    assert request.response is not None
    assert request.response.conversation == "none"
    assert request.response.metadata == {"voicecoach_tier": "quick", "voicecoach_hint": "1"}
    assert request.response.max_output_tokens == CoachSettings().max_output_tokens("quick")
    assert request.response.instructions == CoachSettings().quick_instructions


def test_full_guidance_phrases_and_longer_budget() -> None:
    d = Driver()
    [request] = creates(d.say("Could you walk me through it?"))
    assert request.response is not None and request.response.metadata is not None
    assert request.response.metadata["voicecoach_tier"] == "full"
    assert request.response.max_output_tokens == CoachSettings().max_output_tokens("full")
    assert CoachSettings().max_output_tokens("full") > CoachSettings().max_output_tokens("quick")


def test_no_fire_on_near_misses() -> None:
    d = Driver()
    assert creates(d.say("good questions are rare")) == []
    assert creates(d.say("a goodquestion")) == []


def test_an_utterance_fires_at_most_once() -> None:
    d = Driver(CoachSettings(cooldown_seconds=0))
    out = d.say("good question, ", "really a good question")
    assert len(creates(out)) == 1


def test_cooldown_suppresses_a_second_trigger_then_expires() -> None:
    d = Driver(CoachSettings(cooldown_seconds=2.0))
    assert len(creates(d.say("good question"))) == 1
    assert creates(d.say("good question")) == []  # ~0.3 s later
    d.tick(5.0)
    assert len(creates(d.say("good question"))) == 1


def test_coach_own_transcript_never_fires() -> None:
    d = Driver()
    [_] = creates(d.say("good question"))
    out = d.server_starts("resp_1")
    out += d.coach.handle(
        ev(
            "response.output_audio_transcript.delta",
            response_id="resp_1",
            item_id="c",
            delta="good question, walk me through it",
        ),
        d.tick(),
    )
    out += d.server_done("resp_1")
    out += d.coach.handle(ev("output_audio_buffer.stopped", response_id="resp_1"), d.tick())
    assert creates(out) == []


def test_window_holds_exactly_the_last_n_messages_in_order() -> None:
    d = Driver(CoachSettings(quick_window=3))
    for i in range(1, 6):
        d.say(f"message number {i}.")
    [request] = creates(d.say("good question"))
    assert request.response is not None and request.response.input is not None
    [item] = request.response.input
    assert isinstance(item, ce.UserMessage)
    text = item.content[0].text
    assert "message number 3" not in text
    assert text.index("message number 4") < text.index("message number 5") < text.index("good question")


def test_hint_input_is_bounded_by_the_window_not_the_meeting() -> None:
    def request_after(n: int) -> str:
        d = Driver(CoachSettings(quick_window=3))
        for _ in range(n):
            d.say("we discussed the budget again.")
        [request] = creates(d.say("good question"))
        return request.model_dump_json()

    assert len(request_after(5)) == len(request_after(50))


def test_references_mode_sends_item_references_for_user_turns() -> None:
    d = Driver(CoachSettings(window_mode="references", quick_window=2))
    d.say("first.")
    [request] = creates(d.say("good question"))
    assert request.response is not None and request.response.input is not None
    assert [type(i) for i in request.response.input] == [ce.ItemReference, ce.ItemReference]
    assert [i.id for i in request.response.input] == ["item_u1", "item_u2"]  # type: ignore[union-attr]


def test_spoken_interrupt_while_generating_flushes_cancels_clears_in_order() -> None:
    d = Driver()
    d.say("good question")
    d.server_starts("resp_1")
    assert d.coach.state is State.SPEAKING
    out = d.say("ok got it")
    kinds = [type(a).__name__ for a in out if isinstance(a, FlushPlayback | Send)]
    assert kinds == ["FlushPlayback", "Send", "Send"]
    cancel, clear = sends(out)
    assert cancel == ce.ResponseCancel(response_id="resp_1")
    assert isinstance(clear, ce.OutputAudioBufferClear)
    assert d.coach.state is State.LISTENING
    [coach_line] = [a.message for a in out if isinstance(a, TranscriptChanged) and a.message.role == "coach"]
    assert coach_line.interrupted and coach_line.tier == "quick"


def test_interrupt_after_generation_finished_sends_no_cancel() -> None:
    d = Driver()
    d.say("good question")
    d.server_starts("resp_1")
    d.server_done("resp_1")  # generated; still playing
    out = d.coach.command(Intent.INTERRUPT, d.tick())
    assert [type(e) for e in sends(out)] == [ce.OutputAudioBufferClear]
    assert isinstance(out[0], FlushPlayback)


def test_interrupt_with_nothing_active_sends_nothing() -> None:
    d = Driver()
    assert sends(d.coach.command(Intent.INTERRUPT, d.tick())) == []
    assert sends(d.say("stop")) == []


def test_while_speaking_only_interrupt_phrases_count() -> None:
    d = Driver(CoachSettings(cooldown_seconds=0))
    d.say("good question")
    d.server_starts("resp_1")
    assert creates(d.say("good question")) == []  # the coach's voice leaking into the mic
    assert d.coach.state is State.SPEAKING
    assert len(sends(d.say("stop"))) == 2  # cancel + clear


def test_keys_map_to_intents() -> None:
    d = Driver()
    quick = creates(d.coach.command(Intent.QUICK_HINT, d.tick()))
    assert quick[0].response.metadata["voicecoach_tier"] == "quick"  # type: ignore[union-attr, index]
    full = d.coach.command(Intent.FULL_GUIDANCE, d.tick())
    # A new request replaces the pending one; nothing was created yet, so no cancel goes out.
    assert [type(e) for e in sends(full)] == [ce.OutputAudioBufferClear, ce.ResponseCreate]


def test_pending_hint_interrupted_before_created_is_cancelled_on_creation() -> None:
    d = Driver()
    d.coach.command(Intent.QUICK_HINT, d.tick())
    d.coach.command(Intent.INTERRUPT, d.tick())
    out = d.coach.handle(
        ev("response.created", response={"id": "resp_9", "metadata": {"voicecoach_tier": "quick"}}), d.tick()
    )
    assert sends(out) == [ce.ResponseCancel(response_id="resp_9")]


def test_mute_toggle() -> None:
    d = Driver()
    out = d.coach.command(Intent.TOGGLE_MUTE, d.tick())
    assert SetMicMuted(True) in out and d.coach.state is State.MUTED
    out = d.coach.command(Intent.TOGGLE_MUTE, d.tick())
    assert SetMicMuted(False) in out and d.coach.state is State.LISTENING


def test_mute_mic_while_speaking_option() -> None:
    d = Driver(CoachSettings(mute_mic_while_speaking=True))
    d.say("good question")
    out = d.server_starts("resp_1")
    assert SetMicMuted(True) in out
    d.server_done("resp_1")
    out = d.coach.handle(ev("output_audio_buffer.stopped", response_id="resp_1"), d.tick())
    assert SetMicMuted(False) in out
    assert d.coach.state is State.LISTENING


def test_usage_cost_and_latency_metrics() -> None:
    d = Driver()
    d.say("good question")
    out = d.server_starts("resp_1")
    [latency] = [a for a in out if isinstance(a, Metric) and a.name == "hint.trigger_to_server_audio_ms"]
    assert latency.value > 0
    out = d.server_done("resp_1")
    [cost] = [a for a in out if isinstance(a, Metric) and a.name == "response.cost_usd"]
    # 100 text in @ $4/M + 20 text out @ $16/M + 180 audio out @ $64/M
    assert cost.value == pytest.approx((100 * 4 + 20 * 16 + 180 * 64) / 1e6)
    assert d.coach.usage.cost_usd == pytest.approx(cost.value)


def test_responses_that_are_not_ours_are_ignored() -> None:
    d = Driver()
    out = d.coach.handle(ev("response.created", response={"id": "resp_x", "metadata": {"other": "1"}}), d.tick())
    assert out == [] and d.coach.state is State.LISTENING


def test_fatal_server_error_ends_the_session() -> None:
    from voicecoach.coach.actions import EndSession

    d = Driver()
    out = d.coach.handle(
        ev("error", error={"type": "invalid_request_error", "code": "invalid_api_key", "message": "bad key"}),
        d.tick(),
    )
    assert EndSession("invalid_api_key", fatal=True) in out


def test_session_expired_asks_for_a_new_session_that_carries_the_context() -> None:
    from voicecoach.coach.actions import Reconnect

    d = Driver(CoachSettings(window_mode="references"))
    d.say("the budget is two hundred thousand.")
    out = d.coach.handle(
        ev("error", error={"type": "invalid_request_error", "code": "session_expired", "message": "max duration"}),
        d.tick(),
    )
    assert Reconnect("session_expired") in out
    d.coach.disconnected(d.tick(), "session expired")
    assert d.coach.state is State.DISCONNECTED
    d.coach.connect(d.tick())
    assert d.coach.state is State.CONNECTING
    out = d.coach.handle(ev("session.updated", session={"type": "realtime"}), d.tick())
    assert d.coach.state is State.LISTENING
    [history] = [e for e in sends(out) if isinstance(e, ce.ConversationItemCreate)]
    assert isinstance(history.item, ce.SystemMessage)
    assert "the budget is two hundred thousand." in history.item.content[0].text
    # The old session's items are gone from the server: the window sends them as text, not references.
    [request] = creates(d.coach.command(Intent.QUICK_HINT, d.tick()))
    assert request.response is not None and request.response.input is not None
    assert all(not isinstance(i, ce.ItemReference) for i in request.response.input)


def test_benign_error_is_quiet() -> None:
    d = Driver()
    out = d.coach.handle(
        ev("error", error={"code": "response_cancel_not_active", "message": "Cancellation failed"}), d.tick()
    )
    assert all(getattr(a, "level", "debug") == "debug" for a in out)


def test_a_hint_cut_off_by_a_lost_link_is_kept_as_interrupted() -> None:
    d = Driver()
    d.say("good question")
    d.server_starts("resp_1")
    out = d.coach.disconnected(d.tick(), "peer connection failed")
    [line] = [a.message for a in out if isinstance(a, TranscriptChanged)]
    assert (line.item_id, line.text.strip()) == ("resp_1", "Say")
    assert line.role == "coach" and line.interrupted
    assert not d.coach.busy and d.coach.state is State.DISCONNECTED


def test_responses_are_matched_by_hint_number_and_strays_are_refused() -> None:
    d = Driver()
    d.coach.command(Intent.QUICK_HINT, d.tick())
    # Someone else's response, with metadata of its own, is not ours.
    stray = {"id": "resp_x", "metadata": {"purpose": "summary"}}
    assert d.coach.handle(ev("response.created", response=stray), d.tick()) == []
    # Our metadata names the request: hint #1.
    ours = {"id": "resp_1", "metadata": {"voicecoach_tier": "quick", "voicecoach_hint": "1"}}
    out = d.coach.handle(ev("response.created", response=ours), d.tick())
    assert out == [ExpectAudio("resp_1")]
    # A server that does not echo metadata still gets its response matched to the oldest request.
    d2 = Driver()
    d2.coach.command(Intent.QUICK_HINT, d2.tick())
    assert d2.coach.handle(ev("response.created", response={"id": "resp_7"}), d2.tick()) == [ExpectAudio("resp_7")]


def test_a_hint_the_server_goes_silent_on_is_dropped() -> None:
    from voicecoach.coach.timing import PENDING_TIMEOUT_S

    d = Driver()
    d.coach.command(Intent.QUICK_HINT, d.tick())
    d.coach.handle(ev("response.created", response={"id": "resp_1"}), d.tick())
    assert d.coach.busy
    out = d.coach.handle(ev("rate_limits.updated", rate_limits=[]), d.tick(PENDING_TIMEOUT_S + 1))
    assert any("got no reply" in getattr(a, "text", "") for a in out)
    assert not d.coach.busy
    # Triggers work again.
    d.tick(5)
    assert len(creates(d.say("good question"))) == 1


def test_the_requested_line_follows_the_transcript_line_that_fired_it() -> None:
    """The trigger fires on a delta (the request goes out at once); its "requested" line waits for the final."""
    d = Driver()
    d.coach.handle(ev("conversation.item.added", item={"id": "u1", "type": "message", "role": "user"}), d.tick())
    fired = d.coach.handle(
        ev("conversation.item.input_audio_transcription.delta", item_id="u1", delta="Good question. And"), d.tick()
    )
    assert len(creates(fired)) == 1
    assert not any(isinstance(a, Notice) for a in fired)
    final = d.coach.handle(
        ev("conversation.item.input_audio_transcription.completed", item_id="u1", transcript="Good question. And?"),
        d.tick(),
    )
    shown = [a for a in final if isinstance(a, TranscriptChanged | Notice)]
    assert isinstance(shown[0], TranscriptChanged) and shown[0].final and shown[0].message.item_id == "u1"
    assert shown[1] == Notice("info", "quick hint #1 requested (heard 'good question')")
    assert creates(final) == []  # one request for the utterance


def test_a_held_requested_line_is_never_lost_or_shown_after_the_hint() -> None:
    d = Driver()
    delta = "conversation.item.input_audio_transcription.delta"
    d.coach.handle(ev(delta, item_id="u1", delta="good question, "), d.tick())
    # The hint is generated and its transcript is done before the person stops talking.
    d.server_starts("resp_1")
    done = ev("response.output_audio_transcript.done", response_id="resp_1", item_id="c", transcript="Say")
    out = d.coach.handle(done, d.tick())
    [requested, line] = [a for a in out if isinstance(a, TranscriptChanged | Notice)]
    assert isinstance(requested, Notice) and "requested" in requested.text
    assert isinstance(line, TranscriptChanged) and line.message.role == "coach"
    # Nothing is held any more: the utterance's final shows no second line.
    out = d.coach.handle(
        ev("conversation.item.input_audio_transcription.completed", item_id="u1", transcript="good question, hm"),
        d.tick(),
    )
    assert not any(isinstance(a, Notice) and "requested" in a.text for a in out)
    # A lost link releases a held line too.
    d.coach.command(Intent.INTERRUPT, d.tick(5))
    d.coach.handle(ev(delta, item_id="u2", delta="good question. "), d.tick())
    out = d.coach.disconnected(d.tick(), "gone")
    assert any(isinstance(a, Notice) and "#2 requested" in a.text for a in out)


def test_an_interrupt_is_a_typed_action_naming_why_and_which_hints() -> None:
    d = Driver()
    d.say("good question")
    d.server_starts("resp_1")
    out = d.coach.command(Intent.INTERRUPT, d.tick())
    assert Interrupted("key", (1,)) in out
    assert Interrupted("key", (1,)).text == "interrupted (key)"
    spoken = Driver()
    spoken.say("good question")
    spoken.server_starts("resp_1")
    assert [a.why for a in spoken.say("ok got it") if isinstance(a, Interrupted)] == ["said 'got it'"]
