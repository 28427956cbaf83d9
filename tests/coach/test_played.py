"""What of a hint was heard: played ms to words (timing or proportional), and the coach keeping it so."""

from __future__ import annotations

from typing import Any

import pytest

from voicecoach.coach.actions import Action, Intent, Quit, TranscriptChanged
from voicecoach.coach.coach import Coach
from voicecoach.coach.conversation import Message
from voicecoach.coach.hints import render_window
from voicecoach.coach.played import AUDIO_MS_FIELD, MS_PER_CHAR, Speech, played_part, word_prefix
from voicecoach.coach.settings import CoachSettings
from voicecoach.protocol.server_events import parse_server_dict

TEXT = "Say the budget is on track and the pilot starts in May"


def ev(type_: str, **fields: Any) -> Any:
    return parse_server_dict({"type": type_, **fields})


def test_word_prefix_keeps_words_more_than_half_played() -> None:
    assert word_prefix(TEXT, 0) == ""
    assert word_prefix(TEXT, 1.4) == ""  # "Say" is 3 characters: under half of it
    assert word_prefix(TEXT, 1.6) == "Say"
    assert word_prefix(TEXT, 7) == "Say the"
    assert word_prefix(TEXT, len(TEXT)) == TEXT
    assert word_prefix(TEXT, 10_000) == TEXT
    assert word_prefix("  spaced   out  ", 16) == "  spaced   out"


def test_proportional_uses_the_generated_audio_when_usage_gave_it() -> None:
    speech = Speech(generated_audio_ms=5000)
    half = played_part(TEXT, 2500, speech)
    assert (half.trim, half.played_ms) == ("proportional", 2500)
    assert half.text == word_prefix(TEXT, len(TEXT) / 2) == "Say the budget is on track"
    assert played_part(TEXT, 9000, speech).text == TEXT  # played past the end: all of it
    assert played_part(TEXT, -5, speech).text == ""


def test_proportional_without_usage_uses_the_speech_rate() -> None:
    quarter = len(TEXT) * MS_PER_CHAR / 4
    assert played_part(TEXT, quarter, Speech()).text == word_prefix(TEXT, len(TEXT) / 4)
    # A calibrated rate twice as slow: the same milliseconds cover half the characters.
    assert played_part(TEXT, quarter, Speech(), ms_per_char=2 * MS_PER_CHAR).text == word_prefix(TEXT, len(TEXT) / 8)


def test_timing_follows_the_anchors_not_the_proportion() -> None:
    # "Say" took 2 s of audio (a long pause after it), every later word a little: the anchors say so.
    speech = Speech()
    speech.transcript_delta(0)  # no audio yet: no anchor
    for chars, ms in ((3, 2000), (7, 400), (14, 600)):
        speech.audio_delta(ms)
        speech.transcript_delta(chars)
    speech.audio_delta(1000)
    assert speech.anchors == [(2000, 3), (2400, 7), (3000, 14)]
    cut = played_part(TEXT, 2100, speech)
    assert (cut.trim, cut.text) == ("timing", "Say")
    assert played_part(TEXT, 2300, speech).text == "Say the"  # three quarters of the audio of " the"
    # Proportionally 2100 of 4000 ms would be half of the text: the anchors know better.
    assert played_part(TEXT, 2100, Speech(generated_audio_ms=4000)).text == "Say the budget is on track"
    assert played_part(TEXT, 99_999, speech).text == TEXT


class Driver:
    def __init__(self) -> None:
        self.coach = Coach(CoachSettings(cooldown_seconds=0))
        self.now = 10.0
        self.coach.connect(self.now)
        self.coach.handle(ev("session.updated", session={"type": "realtime"}), self.now)

    def at(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def hint(self, text: str = TEXT, *, audio_ms: float | None = None, done: bool = True) -> str:
        self.coach.command(Intent.QUICK_HINT, self.at(0.01))
        n = len([m for m in self.coach.conversation.messages() if m.role == "coach"]) + 1
        rid = f"resp_{n}"
        response = {"id": rid, "metadata": {"voicecoach_tier": "quick", "voicecoach_hint": str(n)}}
        self.coach.handle(ev("response.created", response=response), self.at(0.1))
        for word in text.split(" "):
            delta = word if word == text.split(" ")[0] else f" {word}"
            self.coach.handle(
                ev("response.output_audio_transcript.delta", response_id=rid, item_id="i", delta=delta), self.at(0.01)
            )
            if audio_ms is not None:
                audio = {"response_id": rid, "item_id": "i", AUDIO_MS_FIELD: audio_ms}
                self.coach.handle(ev("response.output_audio.delta", **audio), self.at(0.01))
        if done:
            self.coach.handle(
                ev("response.output_audio_transcript.done", response_id=rid, item_id="i", transcript=text),
                self.at(0.01),
            )
            usage = {
                "input_tokens": 100,
                "output_tokens": 120,
                "input_token_details": {"text_tokens": 100},
                "output_token_details": {"text_tokens": 20, "audio_tokens": 100},  # 5 s of audio
            }
            self.coach.handle(
                ev("response.done", response={"id": rid, "status": "completed", "usage": usage}), self.at(0.01)
            )
        self.coach.playback(True, self.at(0.05))  # the player's first audible sample
        return rid


def cut_lines(actions: list[Action]) -> list[Message]:
    return [a.message for a in actions if isinstance(a, TranscriptChanged) and a.message.role == "coach" and a.final]


def test_an_interrupted_hint_becomes_what_was_played_and_keeps_what_was_generated() -> None:
    d = Driver()
    d.hint()
    [line] = cut_lines(d.coach.command(Intent.INTERRUPT, d.at(2.5)))  # 2.5 s of its 5 s of audio
    assert (line.text, line.generated_text) == ("Say the budget is on track", TEXT)
    assert (line.interrupted, line.trim) == (True, "proportional") and line.played_ms == pytest.approx(2500)
    # The next hint's window carries what the person heard, marked as cut off.
    assert render_window([line]) == "Coach (interrupted): Say the budget is on track"
    # Late events for it change nothing: it stays as heard.
    d.coach.handle(
        ev("response.output_audio_transcript.done", response_id="resp_1", item_id="i", transcript="x"), d.at(0.1)
    )
    assert d.coach.conversation.messages()[-1].text == "Say the budget is on track"


def test_with_audio_sizes_on_the_deltas_the_transcript_timing_is_used() -> None:
    d = Driver()
    d.hint(audio_ms=400.0, done=False)  # each word: its text, then 400 ms of its audio (the WebSocket's order)
    [line] = cut_lines(d.coach.command(Intent.INTERRUPT, d.at(1.0)))  # 1 s: two and a half words
    assert (line.trim, line.text) == ("timing", "Say the")
    assert line.generated_text == TEXT


def test_a_hint_never_heard_keeps_no_words_but_all_it_generated() -> None:
    d = Driver()
    d.coach.command(Intent.QUICK_HINT, d.at(0.01))
    response = {"id": "resp_1", "metadata": {"voicecoach_tier": "quick", "voicecoach_hint": "1"}}
    d.coach.handle(ev("response.created", response=response), d.at(0.1))
    d.coach.handle(
        ev("response.output_audio_transcript.delta", response_id="resp_1", item_id="i", delta="Say"), d.at(0.1)
    )
    [line] = cut_lines(d.coach.command(Intent.INTERRUPT, d.at(0.1)))  # the player never sounded it
    assert (line.text, line.generated_text, line.played_ms) == ("", "Say", 0.0)


def test_quitting_while_a_hint_plays_keeps_it_as_heard_before_quit() -> None:
    d = Driver()
    d.hint()
    out = d.coach.command(Intent.QUIT, d.at(1.2))  # 1.2 s of 5 s
    [line] = cut_lines(out)
    assert isinstance(out[-1], Quit)
    assert line.interrupted and line.generated_text == TEXT and line.text == "Say the budget"
    assert not d.coach.busy
    assert cut_lines(d.coach.close(d.at(0.5))) == []  # already kept: closing does not cut it again


def test_closing_with_a_hint_in_flight_keeps_it_as_heard() -> None:
    d = Driver()
    d.hint(done=False)
    [line] = cut_lines(d.coach.close(d.at(0.5)))
    assert line.interrupted and line.generated_text == TEXT and TEXT.startswith(line.text)
