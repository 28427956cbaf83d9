"""Two speakers, pure: the other side's channel ("them") interleaves by spoken time, is labelled, never fires or
stops a hint; the echo guard; the coach's own voice on "them"; the cost of each channel's transcription."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecoach.coach.actions import Action, FlushPlayback, Intent, Interrupted, Metric, Notice, Reconnect, Send
from voicecoach.coach.actions import TranscriptChanged as TC
from voicecoach.coach.coach import Coach
from voicecoach.coach.cost import transcription_cost, transcription_prices_for
from voicecoach.coach.echo_guard import ECHO_HOLD_S, own_voice
from voicecoach.coach.hints import render_window
from voicecoach.coach.settings import CoachSettings
from voicecoach.protocol import client_events as ce
from voicecoach.protocol.server_events import parse_server_dict

T0 = 100.0  # both links' audio epoch


def ev(type_: str, **fields: Any) -> Any:
    return parse_server_dict({"type": type_, **fields})


def creates(actions: list[Action]) -> list[ce.ResponseCreate]:
    return [a.event for a in actions if isinstance(a, Send) and isinstance(a.event, ce.ResponseCreate)]


def window_text(request: ce.ResponseCreate) -> str:
    wire = request.to_wire()
    return str(wire["response"]["input"][0]["content"][0]["text"])


def notices(actions: list[Action], needle: str) -> list[Notice]:
    return [a for a in actions if isinstance(a, Notice) and needle in a.text]


class Call:
    """A live coach with both links; times are seconds after T0 (the audio epoch of both)."""

    def __init__(self, settings: CoachSettings | None = None, *, epochs: bool = True) -> None:
        self.coach = Coach(settings or CoachSettings(cooldown_seconds=0.0))
        self.coach.connect(T0)
        self.coach.handle(ev("session.updated", session={"type": "realtime"}), T0)
        if epochs:
            self.coach.channel_started("you", T0)
            self.coach.channel_started("them", T0)

    def mic(self, event: Any, at: float) -> list[Action]:
        return self.coach.handle(event, T0 + at)

    def them(self, event: Any, at: float) -> list[Action]:
        return self.coach.handle_them(event, T0 + at)

    def started(self, side: str, item: str, start: float, at: float) -> list[Action]:
        event = ev("input_audio_buffer.speech_started", item_id=item, audio_start_ms=round(start * 1000))
        return self.mic(event, at) if side == "you" else self.them(event, at)

    def stopped(self, side: str, item: str, end: float, at: float) -> list[Action]:
        event = ev("input_audio_buffer.speech_stopped", item_id=item, audio_end_ms=round(end * 1000))
        return self.mic(event, at) if side == "you" else self.them(event, at)

    def done(self, side: str, item: str, text: str, at: float, **extra: Any) -> list[Action]:
        event = ev("conversation.item.input_audio_transcription.completed", item_id=item, transcript=text, **extra)
        return self.mic(event, at) if side == "you" else self.them(event, at)

    def utterance(self, side: str, item: str, text: str, start: float, end: float, done: float) -> list[Action]:
        """A whole turn, its events at realistic arrival times (VAD ~0.3 s late, transcript at ``done``)."""
        out = self.started(side, item, start, start + 0.3)
        out += self.stopped(side, item, end, end + 0.3)
        return out + self.done(side, item, text, done)

    def roles(self) -> list[tuple[str, str]]:
        return [(m.role, m.text) for m in self.coach.conversation.messages() if m.text]

    def play_hint(self, rid: str, text: str, at: float) -> list[Action]:
        """The server answers the pending request and its audio starts."""
        response = {"id": rid, "status": "in_progress", "metadata": {"voicecoach_hint": "1"}}
        out = self.mic(ev("response.created", response=response), at)
        out += self.mic(ev("response.output_audio_transcript.delta", response_id=rid, item_id="i", delta=text), at)
        return out + self.mic(ev("output_audio_buffer.started", response_id=rid), at + 0.1)


# --- one transcript, two speakers ------------------------------------------------------------------------


def test_their_question_reads_first_although_its_transcript_completes_after_the_reply() -> None:
    call = Call()
    call.started("them", "t1", 1.0, 1.3)
    call.stopped("them", "t1", 3.0, 3.3)
    call.utterance("you", "u1", "Let me think.", start=3.6, end=4.4, done=5.0)  # done before theirs
    call.done("them", "t1", "What is your biggest weakness?", 5.8)
    assert call.roles() == [("them", "What is your biggest weakness?"), ("user", "Let me think.")]
    assert render_window(call.coach.conversation.window(3)) == (
        "Them: What is your biggest weakness?\nYou: Let me think."
    )


def test_a_late_link_does_not_reorder_what_was_said_first() -> None:
    """Their link is congested: its speech_started comes 3 s late, after the user's reply began. Audio time
    (epoch + audio_start_ms) still puts their turn first."""
    call = Call()
    call.started("you", "u1", 3.0, 3.3)
    call.started("them", "t1", 1.0, 4.0)
    call.done("them", "t1", "Shall we start?", 5.0)
    call.done("you", "u1", "Yes.", 5.5)
    assert call.roles() == [("them", "Shall we start?"), ("user", "Yes.")]


def test_without_epochs_turns_go_by_when_their_speech_started_arrived() -> None:
    call = Call(epochs=False)
    call.started("them", "t1", 0.0, 1.3)  # audio_start_ms is ignored: no epoch; arrival 1.3 counts
    call.started("you", "u1", 0.0, 3.9)
    call.done("you", "u1", "Sure.", 5.0)
    call.done("them", "t1", "Ready?", 6.0)
    assert call.roles() == [("them", "Ready?"), ("user", "Sure.")]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_no_inversions_for_turns_more_than_half_a_second_apart(data: st.DataObject) -> None:
    """A scripted dialogue: alternating or not, transcripts 0.2-3 s late and out of order, VAD events 0.1-0.5 s
    late on the microphone's link and up to 2.5 s late on theirs (a slower link). Spoken order is the transcript
    order, with epochs; 0 inversions (the issue's budget)."""
    n = data.draw(st.integers(2, 12))
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    turns, t = [], 0.5
    for i in range(n):
        side = data.draw(st.sampled_from(["you", "them"]))
        length = rng.uniform(0.3, 4.0)
        turns.append((side, f"{side}{i}", f"turn {i}", t, t + length))
        t += length + rng.uniform(0.51, 3.0)
    events: list[tuple[float, int, str, str, str, Any]] = []
    for k, (side, item, text, start, end) in enumerate(turns):
        lag = rng.uniform(0.1, 0.5) + (rng.uniform(0.0, 2.0) if side == "them" else 0.0)
        events.append((start + lag, k, side, "started", item, start))
        events.append((end + lag, k, side, "stopped", item, end))
        events.append((end + rng.uniform(0.2, 3.0), k, side, "done", item, text))
    call = Call()
    for at, _k, side, what, item, value in sorted(events):
        if what == "started":
            call.started(side, item, value, at)
        elif what == "stopped":
            call.stopped(side, item, value, at)
        else:
            call.done(side, item, value, at)
    assert [text for _role, text in call.roles()] == [text for *_, text, _s, _e in turns]


def test_hint_windows_count_both_channels_and_name_them_by_label() -> None:
    call = Call(CoachSettings(them_label="Interviewer", quick_window=2, cooldown_seconds=0.0))
    call.utterance("you", "u0", "Hello.", 0.0, 0.5, 1.5)
    call.utterance("them", "t1", "Tell me about a failure.", 2.0, 4.0, 5.0)
    out = call.utterance("you", "u1", "Good question.", 5.2, 6.0, 7.0)
    [request] = creates(out)
    assert window_text(request).endswith("Interviewer: Tell me about a failure.\nYou: Good question.")
    assert "Hello." not in window_text(request)  # two messages, from either channel
    labels = [a.message.label for a in out if isinstance(a, TC) and a.message.role == "user"]
    assert labels == [None]


def test_references_mode_sends_their_turns_as_labelled_text() -> None:
    call = Call(CoachSettings(window_mode="references", cooldown_seconds=0.0))
    call.utterance("them", "t1", "Any questions?", 0.0, 1.0, 2.0)
    item = {"id": "u1", "type": "message", "role": "user", "content": []}
    call.mic(ev("conversation.item.added", item=item), 3.0)
    out = call.utterance("you", "u1", "Good question.", 2.5, 3.0, 4.0)
    [request] = creates(out)
    inputs = request.to_wire()["response"]["input"]
    assert inputs[0]["content"][0]["text"] == "Them: Any questions?"
    assert inputs[1] == {"type": "item_reference", "id": "u1"}


# --- only the user fires --------------------------------------------------------------------------------


def test_their_trigger_phrases_never_ask_and_their_interrupts_never_stop() -> None:
    call = Call()
    asked = call.utterance("them", "t1", "Good question. Give me guidance.", 0.0, 1.0, 2.0)
    asked += call.them(ev("conversation.item.input_audio_transcription.delta", item_id="t2", delta="good question "), 3)
    asked += call.done("them", "t2", "good question", 3.5)
    assert creates(asked) == []
    fired = call.utterance("you", "u1", "Good question.", 6.0, 7.0, 8.0)
    assert len(creates(fired)) == 1
    call.play_hint("r1", "Say the trade-off first.", 9.0)
    stopped = call.utterance("them", "t3", "Got it. Stop.", 10.0, 10.5, 11.0)
    assert not [a for a in stopped if isinstance(a, FlushPlayback | Interrupted)]
    mine = call.utterance("you", "u2", "Got it.", 11.0, 11.5, 12.0)
    assert [a.why for a in mine if isinstance(a, Interrupted)] == ["said 'got it'"]


def test_errors_on_their_link_are_notices_and_never_renew_or_end_the_run() -> None:
    call = Call()
    error = {"type": "invalid_request_error", "code": "session_expired", "message": "Your session hit the limit"}
    out = call.them(ev("error", error=error), 1.0)
    assert [type(a) for a in out] == [Notice] and notices(out, "Them channel: server error (session_expired)")
    assert not [a for a in out if isinstance(a, Reconnect)]


# --- the echo guard ---------------------------------------------------------------------------------------


def test_a_trigger_heard_on_both_channels_within_two_seconds_is_dropped_as_echo() -> None:
    call = Call()
    call.utterance("them", "t1", "That's a good question.", 1.0, 2.5, 3.6)
    out = call.utterance("you", "u1", "a good question", 1.05, 2.55, 3.9)  # loudspeaker: the same words, late
    assert creates(out) == []
    [notice] = notices(out, "echo")
    assert notice.level == "info" and "'good question'" in notice.text


def test_a_trigger_the_other_side_did_not_say_nearby_fires_at_once() -> None:
    call = Call()
    call.utterance("them", "t1", "That's a good question.", 1.0, 2.5, 3.6)
    out = call.utterance("you", "u1", "Good question.", 4.6, 5.2, 6.0)  # 2.1 s after theirs ended
    assert len(creates(out)) == 1 and not notices(out, "echo")
    out = call.utterance("you", "u2", "Give me guidance.", 6.5, 7.0, 8.0)  # they are talking? no: fires at once
    assert len(creates(out)) == 1


def test_while_they_speak_a_trigger_waits_for_their_transcript_then_fires_or_drops() -> None:
    call = Call()
    call.started("them", "t1", 1.0, 1.3)
    held = call.utterance("you", "u1", "Good question.", 1.1, 2.0, 3.0)  # theirs is still being transcribed
    assert creates(held) == [] and call.coach.next_deadline() == pytest.approx(T0 + 3.0 + ECHO_HOLD_S)
    out = call.done("them", "t1", "How would you scale it?", 3.4)
    [request] = creates(out)  # not an echo: it fires, and its window has their question
    assert "Them: How would you scale it?" in window_text(request)

    call.started("them", "t2", 20.0, 20.3)
    held = call.utterance("you", "u2", "good question", 20.1, 21.0, 22.0)
    out = call.done("them", "t2", "Good question, I think.", 22.5)
    assert creates([*held, *out]) == [] and notices(out, "echo")


def test_a_held_trigger_fires_when_their_transcript_is_late_or_their_link_is_lost() -> None:
    call = Call()
    call.started("them", "t1", 1.0, 1.3)
    assert creates(call.utterance("you", "u1", "Good question.", 1.1, 2.0, 3.0)) == []
    assert creates(call.coach.tick(T0 + 3.0 + ECHO_HOLD_S - 0.01)) == []
    assert len(creates(call.coach.tick(T0 + 3.0 + ECHO_HOLD_S))) == 1

    call.started("them", "t2", 10.0, 10.3)
    assert creates(call.utterance("you", "u2", "Good question.", 10.1, 11.0, 12.0)) == []
    assert not call.coach.them_quiet
    out = call.coach.them_disconnected(T0 + 12.5, "socket closed")
    assert len(creates(out)) == 1 and notices(out, "disconnected")
    assert call.coach.them_quiet


def test_a_key_press_while_a_trigger_is_held_asks_once() -> None:
    call = Call()
    call.started("them", "t1", 1.0, 1.3)
    call.utterance("you", "u1", "Good question.", 1.1, 2.0, 3.0)
    assert len(creates(call.coach.command(Intent.QUICK_HINT, T0 + 3.2))) == 1
    assert creates(call.coach.tick(T0 + 10)) == [] and call.coach.next_deadline() != T0 + 3.0 + ECHO_HOLD_S


# --- the coach never hears itself as "them" ---------------------------------------------------------------


HINT = "Say that you learn fast, and give one concrete example from your last project."


def test_the_coachs_own_voice_on_their_channel_is_dropped_and_theirs_is_kept() -> None:
    call = Call()
    call.utterance("you", "u1", "Good question.", 0.0, 0.8, 1.5)
    call.play_hint("r1", HINT, 2.0)
    out = call.utterance("them", "t1", "say that you learned fast and give one concrete example", 2.2, 5.0, 6.0)
    assert [a.message.text for a in out if isinstance(a, TC)] == [""]  # a blank final retracts any partial line
    assert notices(out, "own voice") and call.coach.speakers.dropped_own_voice == 1
    assert [role for role, _ in call.roles()] == ["user", "coach"]
    out = call.utterance("them", "t2", "Sorry, could you repeat that?", 3.0, 4.0, 6.5)  # theirs, over the hint
    assert [a.message.text for a in out if isinstance(a, TC)] == ["Sorry, could you repeat that?"]


def test_the_self_voice_check_ends_two_seconds_after_the_hint_stopped_playing() -> None:
    call = Call()
    call.utterance("you", "u1", "Good question.", 0.0, 0.8, 1.5)
    call.play_hint("r1", HINT, 2.0)
    call.mic(ev("output_audio_buffer.stopped", response_id="r1"), 8.0)
    near = call.utterance("them", "t1", "give one concrete example from your last project", 9.5, 11.0, 12.0)
    assert not [a for a in near if isinstance(a, TC) and a.message.text]
    far = call.utterance("them", "t2", "give one concrete example from your last project", 10.5, 12.0, 13.0)
    assert [a.message.text for a in far if isinstance(a, TC)] == ["give one concrete example from your last project"]


def test_their_partial_lines_wait_while_the_coach_may_be_heard() -> None:
    call = Call()
    delta = ev("conversation.item.input_audio_transcription.delta", item_id="t1", delta="Hello")
    assert [type(a) for a in call.them(delta, 1.0)] == [TC]
    call.done("them", "t1", "Hello", 1.2)
    assert len(creates(call.utterance("you", "u1", "Good question.", 1.5, 2.0, 3.0))) == 1
    call.play_hint("r1", HINT, 3.5)
    delta = ev("conversation.item.input_audio_transcription.delta", item_id="t2", delta="Say that")
    assert call.them(delta, 4.0) == []


@pytest.mark.parametrize(
    ("them", "hints", "own"),
    [
        ("Say that you learn fast.", [HINT], True),
        ("you learn fast", [HINT], True),
        ("fast", [HINT], False),  # one word is never dropped
        ("you learn slowly", [HINT], False),  # short: must match in full
        ("What about your last project then, tell me more", [HINT], False),
        ("Say that you learn fast.", [], False),
    ],
)
def test_own_voice_needs_most_of_the_words_in_order(them: str, hints: list[str], own: bool) -> None:
    assert own_voice(them, hints) is own


# --- cost ---------------------------------------------------------------------------------------------------


def test_their_transcription_is_priced_from_usage_tokens_duration_or_minutes() -> None:
    call = Call(CoachSettings())
    usage = {
        "type": "tokens",
        "total_tokens": 22,
        "input_tokens": 13,
        "input_token_details": {"text_tokens": 0, "audio_tokens": 13},
        "output_tokens": 9,
    }
    call.started("them", "t1", 0.0, 0.3)
    call.stopped("them", "t1", 1.3, 1.6)
    out = call.done("them", "t1", "Hey, can you hear me?", 2.0, usage=usage)
    [metric] = [a for a in out if isinstance(a, Metric)]
    expected = (13 * 3.00 + 9 * 5.00) / 1e6
    assert metric.name == "transcription.cost_usd" and metric.value == pytest.approx(expected)
    assert metric.data["channel"] == "them" and metric.data["total_usd"] == pytest.approx(expected)
    call.started("them", "t2", 3.0, 3.3)
    call.stopped("them", "t2", 9.0, 9.3)
    call.done("them", "t2", "no usage at all", 10.0)  # 6 s of committed speech at $0.003/min
    them = call.coach.cost.transcription["them"]
    assert them.cost_usd == pytest.approx(expected + 6 / 60 * 0.003) and them.utterances == 2
    assert call.coach.cost.transcription["you"].cost_usd == 0.0
    split = call.coach.cost.split()
    assert split["transcription_them"] == pytest.approx(them.cost_usd) and split["hints"] == 0.0
    assert call.coach.cost_usd == pytest.approx(split["total"])


def test_the_run_total_adds_hints_and_both_channels() -> None:
    call = Call(CoachSettings(cooldown_seconds=0.0))
    call.coach.cost.transcription["them"].model = "gpt-realtime-whisper"
    call.done("them", "t1", "Fine.", 1.0, usage={"type": "duration", "seconds": 60})
    call.done("you", "u1", "Good question.", 2.0, usage={"type": "duration", "seconds": 30})  # mini: $0.003/min
    usage = {"input_tokens": 10, "output_tokens": 0, "input_token_details": {"text_tokens": 10}}
    done = ev("response.done", response={"id": "r1", "status": "completed", "usage": usage})
    [cost, _tokens] = [a for a in call.mic(done, 3.0) if isinstance(a, Metric)]
    assert call.coach.cost_usd == pytest.approx(0.017 + 0.0015 + 10 * 4.00 / 1e6)
    assert cost.data["total_usd"] == pytest.approx(call.coach.cost_usd)


def test_transcription_prices_and_odd_usage() -> None:
    assert transcription_prices_for("gpt-4o-mini-transcribe-2025-12-15").per_minute == 0.003
    assert transcription_prices_for("gpt-4o-transcribe").per_minute == 0.006
    assert transcription_prices_for("something-new").per_minute == 0.003
    mini = transcription_prices_for("gpt-4o-mini-transcribe")
    assert transcription_cost({"type": "duration", "seconds": "x"}, mini, 5.0) == (0.0, 0.0)
    assert transcription_cost(None, mini, None) == (0.0, 0.0)
    assert transcription_cost({"input_tokens": 100, "output_tokens": -5}, mini, None)[0] == pytest.approx(3e-4)
