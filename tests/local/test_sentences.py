"""Cutting streamed hint text into speakable pieces (pure)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable

import pytest

from voicecoach.local.sentences import CLAUSE_WORDS, MAX_WORDS, SentenceCutter, sentences


def cut(deltas: Iterable[str]) -> list[str]:
    cutter = SentenceCutter()
    out = [piece for delta in deltas for piece in cutter.push(delta)]
    rest = cutter.finish()
    return [*out, rest] if rest else out


def chars(text: str) -> list[str]:
    return list(text)  # the worst case: one character per delta


def words(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text)  # word by word, each with its trailing space, as LLM tokens come


@pytest.mark.parametrize("split", [chars, words, lambda t: [t]], ids=["chars", "words", "whole"])
def test_sentences_end_at_terminators_however_the_text_arrives(split: Callable[[str], list[str]]) -> None:
    text = "Ask about the budget. Then stop! Why not? Done"
    assert cut(split(text)) == ["Ask about the budget.", "Then stop!", "Why not?", "Done"]


def test_a_sentence_is_released_when_the_next_delta_begins_not_before() -> None:
    cutter = SentenceCutter()
    assert cutter.push("It costs 3.") == []  # "3." may be "3.5"
    assert cutter.push("5 dollars. ") == ["It costs 3.5 dollars."]
    assert cutter.push("Next") == []
    assert cutter.finish() == "Next"


def test_abbreviations_and_decimals_do_not_end_a_sentence() -> None:
    assert cut(chars("Ask Dr. Smith, e.g. about the 2.5 rate. Then go.")) == [
        "Ask Dr. Smith, e.g. about the 2.5 rate.",
        "Then go.",
    ]


def test_closing_quotes_stay_with_their_sentence() -> None:
    assert cut(chars('Say "I led it." Then pause.')) == ['Say "I led it."', "Then pause."]


def test_a_long_clause_is_cut_at_a_comma_a_short_one_is_not() -> None:
    short = "Yes, say that, and smile."
    assert cut(chars(short)) == [short]
    long_clause = " ".join(["word"] * CLAUSE_WORDS) + ", and then the rest of it."
    assert cut(chars(long_clause)) == [" ".join(["word"] * CLAUSE_WORDS) + ",", "and then the rest of it."]


def test_unpunctuated_text_is_cut_every_max_words() -> None:
    text = " ".join(f"w{i}" for i in range(MAX_WORDS * 2 + 3))
    pieces = cut(chars(text))
    assert [len(p.split()) for p in pieces] == [MAX_WORDS, MAX_WORDS, 3]
    assert " ".join(pieces) == text


def test_line_breaks_end_pieces_and_blank_lines_vanish() -> None:
    assert cut(chars("- ask about scope\n\n- ask about dates\n")) == ["- ask about scope", "- ask about dates"]


def test_nothing_in_nothing_out() -> None:
    assert cut([]) == [] and cut(["  ", "\n"]) == []


async def test_the_async_form_yields_each_piece_as_soon_as_it_is_finished() -> None:
    seen: list[str] = []

    async def deltas() -> AsyncIterator[str]:
        for delta in ["One. ", "Two", ". Three"]:
            yield delta
            seen.append(delta)

    pieces = []
    async for piece in sentences(deltas()):
        pieces.append((piece, list(seen)))
    # "One." is out before "Two" was even produced; "Two." once ". Three" began; the rest at the end.
    assert pieces == [("One.", []), ("Two.", ["One. ", "Two"]), ("Three", ["One. ", "Two", ". Three"])]
