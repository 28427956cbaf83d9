"""Phrase normalization, word-boundary matching and streaming trigger detection (pure, explicit ``now``)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecoach.coach.phrases import MAX_CLOSED_ITEMS, MAX_OPEN_ITEMS, Match, PhraseMatcher, TriggerDetector, normalize

COACH_PHRASES = {"quick": ["good question"], "full": ["give me guidance", "walk me through it"]}
INTERRUPTS = {"interrupt": ["got it", "thanks, got it", "stop"]}


def detector(phrases: dict[str, list[str]] | None = None, cooldown_s: float = 0.0) -> TriggerDetector:
    return TriggerDetector(PhraseMatcher(phrases or COACH_PHRASES), cooldown_s)


def split(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut at the given offsets into non-empty deltas."""
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def feed_all(d: TriggerDetector, item_id: str, deltas: list[str], now: float = 0.0) -> list[Match | None]:
    return [d.feed(item_id, delta, now) for delta in deltas]


# --- normalize ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Good, question!", "good question"),
        ("  GOOD\tquestion \n", "good question"),
        ("It's fine", "its fine"),
        ("it\u2019s fine", "its fine"),  # typographic apostrophe
        ("well-known; end.", "well known end"),
        ("thanks,got it", "thanks got it"),
        ("Straße", "strasse"),  # casefold, not lower
        ("\uff33\uff34\uff2f\uff30\uff01", "stop"),  # full-width "STOP!" (NFKC)
        ("cafe\u0301", "café"),  # decomposed accent joins its letter
        ("नमस्ते दोस्त", "नमस्ते दोस्त"),  # Devanagari vowel signs and virama are word characters
        ("...!?", ""),
        ("", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@given(st.text())
def test_normalize_is_idempotent_and_canonical(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip()
    assert "  " not in once
    assert "'" not in once


# --- PhraseMatcher ------------------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", "!?", "- -"])
def test_blank_phrase_is_rejected_naming_the_action(blank: str) -> None:
    with pytest.raises(ValueError, match="'full'"):
        PhraseMatcher({"quick": ["good question"], "full": [blank]})


def test_same_phrase_under_two_actions_is_ambiguous() -> None:
    with pytest.raises(ValueError, match=r"ambiguous.*'good question'"):
        PhraseMatcher({"quick": ["good question"], "full": ["Good, question!"]})


def test_repeated_phrase_within_one_action_and_empty_action_are_fine() -> None:
    m = PhraseMatcher({"interrupt": ["stop", "STOP."], "unused": []})
    assert m.find("please stop") == Match("interrupt", "stop", 2)
    assert m.actions == frozenset({"interrupt", "unused"})


def test_a_bare_string_instead_of_a_list_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="'quick'"):
        PhraseMatcher({"quick": "good question"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Good question!", Match("quick", "good question", 2)),
        ("that's a good question, really", Match("quick", "good question", 4)),
        ("good questions are rare", None),
        ("a goodquestion", None),
        ("a good, question", Match("quick", "good question", 3)),  # punctuation between words does not matter
        ("Could you walk me through it?", Match("full", "walk me through it", 6)),
        ("", None),
    ],
)
def test_find_on_word_boundaries(text: str, expected: Match | None) -> None:
    assert PhraseMatcher(COACH_PHRASES).find(text) == expected


def test_earliest_end_wins_then_the_longer_phrase() -> None:
    m = PhraseMatcher({**COACH_PHRASES, "other": ["question"], "thanks": ["thanks"]})
    # Both "good question" and "question" end at word 2: the longer one.
    assert m.find("good question") == Match("quick", "good question", 2)
    # The first thing the person finished saying wins, even if a later phrase is longer.
    assert m.find("walk me through it, good question") == Match("full", "walk me through it", 4)
    assert m.find("thanks, got it") == Match("thanks", "thanks", 1)
    interrupts = PhraseMatcher(INTERRUPTS)
    assert interrupts.find("thanks, got it") == Match("interrupt", "thanks got it", 3)


VOCAB = ["good", "question", "stop", "got", "it", "thanks", "walk", "me"]
PHRASES = ["good question", "stop", "got it", "thanks got it", "question", "me"]


def reference_find(words: list[str]) -> tuple[str, int] | None:
    """Brute force: every (phrase, end) occurrence; earliest end, then longest."""
    hits = []
    for phrase in PHRASES:
        p = phrase.split()
        for start in range(len(words) - len(p) + 1):
            if words[start : start + len(p)] == p:
                hits.append((start + len(p), -len(p), phrase))
    if not hits:
        return None
    end, _, phrase = min(hits)
    return phrase, end


@given(st.lists(st.sampled_from(VOCAB), max_size=12), st.sampled_from([" ", ", ", "! ", " - ", "\n"]))
def test_find_agrees_with_brute_force(words: list[str], sep: str) -> None:
    m = PhraseMatcher({p: [p] for p in PHRASES})
    found = m.find(sep.join(w.upper() if i % 2 else w for i, w in enumerate(words)))
    assert (None if found is None else (found.phrase, found.end)) == reference_find(words)


# --- TriggerDetector: streaming -----------------------------------------------------------------------


def test_a_phrase_split_across_deltas_fires_once_the_last_word_is_finished() -> None:
    d = detector()
    assert feed_all(d, "i1", ["That is a ", "good", " quest", "ion"]) == [None] * 4
    assert d.feed("i1", ". Hmm", 0.0) == Match("quick", "good question", 5)


def test_a_phrase_followed_by_more_words_in_the_same_delta_fires_at_once() -> None:
    d = detector()
    assert d.feed("i1", "good question and", 0.0) == Match("quick", "good question", 2)


def test_a_partial_last_word_never_fires_early() -> None:
    d = detector(INTERRUPTS)
    assert d.feed("i1", "sto", 0.0) is None
    assert d.feed("i1", "p", 0.0) is None  # "stop" so far, but it may still become "stopwatch"
    assert d.feed("i1", " now", 0.0) == Match("interrupt", "stop", 1)


def test_stopwatch_never_fires_stop() -> None:
    d = detector(INTERRUPTS)
    assert feed_all(d, "i1", ["stop", "watch"]) == [None, None]
    assert d.complete("i1", "Stopwatch", 0.0) is None


def test_good_quest_does_not_fire_good_question() -> None:
    d = detector()
    assert feed_all(d, "i1", ["a good quest", " indeed."]) == [None, None]
    assert d.complete("i1", "a good quest indeed.", 0.0) is None


def test_a_trailing_apostrophe_does_not_finish_a_word() -> None:
    d = detector({"x": ["don"]})
    assert feed_all(d, "i1", ["don", "'", "t"]) == [None, None, None]
    assert d.complete("i1", "don't", 0.0) is None


def test_completion_fires_a_phrase_said_last() -> None:
    d = detector()
    assert d.feed("i1", "good question", 0.0) is None
    assert d.complete("i1", "Good question", 0.0) == Match("quick", "good question", 2)


def test_the_final_transcript_replaces_the_deltas() -> None:
    d = detector()
    assert d.feed("i1", "good quest", 0.0) is None
    assert d.complete("i1", "Good question.", 0.0) == Match("quick", "good question", 2)
    d2 = detector()
    assert d2.feed("i2", "good question", 0.0) is None
    assert d2.complete("i2", "good questions", 0.0) is None


def test_an_item_fires_at_most_once() -> None:
    d = detector()
    assert d.feed("i1", "good question, ", 0.0) is not None
    assert d.feed("i1", "really a good question.", 1.0) is None
    assert d.complete("i1", "good question, really a good question.", 2.0) is None


def test_deltas_after_completion_are_ignored() -> None:
    d = detector()
    assert d.complete("i1", "nothing here", 0.0) is None
    assert d.feed("i1", "good question.", 1.0) is None
    assert d.complete("i1", "good question.", 1.0) is None


def test_items_are_independent() -> None:
    d = detector()
    assert d.feed("i1", "good ", 0.0) is None
    assert d.feed("i2", "question ", 0.0) is None  # another utterance: no cross-item phrase
    assert d.feed("i1", "question.", 0.0) == Match("quick", "good question", 2)


# --- TriggerDetector: cooldown, memory -------------------------------------------------------------


def test_cooldown_suppresses_and_the_suppressed_item_never_fires_late() -> None:
    d = detector(cooldown_s=2.0)
    assert d.complete("i1", "good question", 10.0) is not None
    assert d.feed("i2", "good question.", 11.0) is None  # 1 s after the last fire
    assert d.complete("i2", "good question.", 13.0) is None  # past the cooldown, but i2 already spent
    assert d.complete("i3", "give me guidance", 11.9) is None
    assert d.complete("i4", "give me guidance", 12.0) == Match("full", "give me guidance", 3)  # exactly 2 s


def test_suppressed_matches_do_not_extend_the_cooldown() -> None:
    d = detector(cooldown_s=2.0)
    assert d.complete("i1", "good question", 0.0) is not None
    assert d.complete("i2", "good question", 1.5) is None
    assert d.complete("i3", "good question", 2.0) is not None


def test_zero_cooldown_lets_consecutive_items_fire() -> None:
    d = detector(cooldown_s=0.0)
    assert d.complete("i1", "stop", 0.0) is None  # not a coach phrase
    assert d.complete("i2", "good question", 0.0) is not None
    assert d.complete("i3", "good question", 0.0) is not None


def test_negative_cooldown_is_rejected() -> None:
    with pytest.raises(ValueError, match="cooldown"):
        detector(cooldown_s=-1)


def test_open_items_are_bounded_and_a_stale_item_is_dropped() -> None:
    d = detector()
    d.feed("old", "good", 0.0)
    for i in range(MAX_OPEN_ITEMS * 4):
        d.feed(f"i{i}", "hmm", 0.0)
        assert d.open_items <= MAX_OPEN_ITEMS
    # Evicted long ago: closed, so late text for it neither fires on a stale half nor starts it afresh.
    assert d.feed("old", " question. good question.", 1.0) is None
    assert d.feed("new", "good question.", 1.0) is not None


def test_completed_items_are_not_kept() -> None:
    d = detector()
    for i in range(MAX_CLOSED_ITEMS * 3):
        d.feed(f"i{i}", "hello ", 0.0)
        d.complete(f"i{i}", "hello", 0.0)
    assert d.open_items == 0
    assert d.feed(f"i{MAX_CLOSED_ITEMS * 3 - 1}", "good question.", 0.0) is None  # recent: still remembered
    assert d.feed("i0", "good question.", 0.0) is not None  # beyond the horizon: a new utterance


@given(
    st.lists(st.sampled_from(VOCAB), max_size=10),
    st.lists(st.integers(min_value=0, max_value=80), max_size=6),
)
def test_streaming_agrees_with_whole_text_matching(words: list[str], cuts: list[int]) -> None:
    """However the text is cut into deltas, the first fire is the whole-text match (cooldown 0)."""
    text = ", ".join(words) + "."
    deltas = split(text, cuts)
    matcher = PhraseMatcher({p: [p] for p in PHRASES})
    d = TriggerDetector(matcher, 0.0)
    fired = [m for m in [*feed_all(d, "i", deltas), d.complete("i", text, 0.0)] if m is not None]
    assert len(fired) <= 1
    assert (fired[0] if fired else None) == matcher.find(text)


@given(st.text(max_size=40), st.lists(st.integers(min_value=0, max_value=40), max_size=5))
def test_streaming_never_fires_something_the_whole_text_lacks(text: str, cuts: list[int]) -> None:
    """Arbitrary Unicode: a fire from a prefix is always the match of the full text."""
    deltas = split(text, cuts)
    matcher = PhraseMatcher({"a": ["a"], "ab": ["a b"], "b": ["b"], "e": ["é"]})
    d = TriggerDetector(matcher, 0.0)
    fired = [m for m in [*feed_all(d, "i", deltas), d.complete("i", text, 0.0)] if m is not None]
    assert (fired[0] if fired else None) == matcher.find(text)
