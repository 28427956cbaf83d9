"""Trigger and interrupt phrases, matched on whole words of a streaming transcription.

Pure: no I/O and no clock; the caller passes ``now`` (monotonic seconds).

Matching happens on :func:`normalize`\\d text split into words, so case, punctuation and spacing never matter
and a phrase only matches whole words: "good question" matches "a good question, really" but not
"good questions", and "stop" does not match "stopwatch".

Streaming rule (:class:`TriggerDetector`): while an utterance is still arriving as deltas, its last word may
be cut ("sto" + "p", "good quest" + "ion"). A phrase whose last word is the *last word of the running text* is
therefore not trusted until that word is known to be finished: the running text ends in a delimiter (space,
punctuation), or the next delta starts with one, or the final transcript arrives. Latency trade-off: a phrase
that ends a sentence ("... good question.") usually arrives with its punctuation or the next word in a later
delta (tens of milliseconds later), so the wait is small; a phrase said last with no punctuation waits for the
completed transcript, i.e. for the end of the VAD turn (the configured silence, 500 ms by default) plus the
transcription's finish. The other choice, firing on a prefix, would fire "stop" on "stopwatch" and "good
question" on "good questions"; a wrong hint costs more (seconds of unwanted speech, tokens) than that delay.
"""

from __future__ import annotations

import logging
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Apostrophes join instead of splitting, so "it's" == "its" and "don't" == "dont" (transcribers are not
# consistent about them). Typographic variants included; a *trailing* apostrophe never ends a word either.
_APOSTROPHES = frozenset("'\u2019\u02bc")
MAX_OPEN_ITEMS = 64  # utterances tracked at once; a stale one (no completion after 64 newer) is dropped
# Ids of finished utterances remembered so that late events for them are ignored. Only ids are kept (~100 bytes
# each), so the horizon can be much longer than the open-item bound.
MAX_CLOSED_ITEMS = 1024


def _is_word_char(ch: str) -> bool:
    # Combining marks (category M) belong to the word they modify: without this, decomposed "é" or the vowel
    # signs of Devanagari/Thai would split words apart, since str.isalnum() is False for them.
    return ch.isalnum() or unicodedata.category(ch).startswith("M")


def _fold(text: str) -> str:
    """Compatibility-normalize and casefold: full-width "STOP", "Stop" and "stop" become one; "é" is one code point."""
    # NFKC again after casefold because casefolding can leave a string that is not NFKC (keeps normalize idempotent).
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _words(folded: str) -> list[str]:
    out: list[str] = []
    for ch in folded:
        if ch in _APOSTROPHES:
            continue
        out.append(ch if _is_word_char(ch) else " ")
    return "".join(out).split()


def normalize(text: str) -> str:
    """Casefold, drop apostrophes, turn every other non-word character into a space, collapse spaces.

    ``normalize("Good, question!") == "good question"``; ``normalize("It's  a well-known") == "its a well known"``.
    Idempotent. Unicode-aware: letters, digits and combining marks of any script are word characters, and
    compatibility forms are unified (NFKC), so full-width or decomposed input matches plain phrases.
    """
    return " ".join(_words(_fold(text)))


def _last_word_complete(folded: str) -> bool:
    """True if the last word of an already folded text is certainly finished: the text ends in a delimiter.

    Checked on the folded text, not the raw one, because NFKC can turn a symbol into letters ("㎏" → "kg").
    """
    if not folded:
        return True
    last = folded[-1]
    return not (_is_word_char(last) or last in _APOSTROPHES)


@dataclass(frozen=True)
class Match:
    """A phrase found in a text. ``end`` is the index of the word just after the phrase in ``normalize(text)``."""

    action: str
    phrase: str  # the normalized phrase
    end: int


class PhraseMatcher:
    """Finds configured phrases on word boundaries.

    ``phrases`` maps an action name (e.g. ``"quick"``) to its phrases. Raises ``ValueError`` for a phrase that
    normalizes to nothing (naming the action) and for a phrase configured under two actions. An action may
    have no phrases (it never matches); repeating a phrase within one action is harmless.
    """

    def __init__(self, phrases: Mapping[str, Sequence[str]]) -> None:
        owner: dict[tuple[str, ...], str] = {}
        for action, items in phrases.items():
            if isinstance(items, str):
                # A bare str is a Sequence[str] too; iterating it would register single letters as phrases.
                raise TypeError(f"phrases for {action!r} must be a list of strings, not one string")
            for raw in items:
                words = tuple(_words(_fold(raw)))
                if not words:
                    raise ValueError(f"empty trigger phrase {raw!r} for action {action!r}")
                other = owner.setdefault(words, action)
                if other != action:
                    raise ValueError(
                        f"ambiguous phrase {' '.join(words)!r}: configured for both {other!r} and {action!r}"
                    )
        # Indexed by last word: a scan only looks at phrases that can end at the current word.
        self._by_last: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for words, action in owner.items():
            self._by_last.setdefault(words[-1], []).append((words, action))
        for candidates in self._by_last.values():
            candidates.sort(key=lambda c: len(c[0]), reverse=True)  # ties at one end → the longer phrase
        self.actions: frozenset[str] = frozenset(phrases)

    def find(self, text: str) -> Match | None:
        """The match that ends first in ``normalize(text)`` (ties: the longer phrase), or None."""
        words = _words(_fold(text))
        return self.find_words(words, len(words))

    def find_words(self, words: Sequence[str], limit: int) -> Match | None:
        """Like :meth:`find` on already-normalized ``words``, considering only phrases ending at or before
        word index ``limit`` (used to ignore a possibly unfinished last word)."""
        for end in range(1, min(limit, len(words)) + 1):
            for phrase, action in self._by_last.get(words[end - 1], ()):
                start = end - len(phrase)
                if start >= 0 and tuple(words[start:end]) == phrase:
                    return Match(action=action, phrase=" ".join(phrase), end=end)
        return None


@dataclass
class _Item:
    text: str = ""


class TriggerDetector:
    """Streaming detection over one utterance at a time (an utterance = a transcription ``item_id``).

    Contract:
    - an item fires at most once, whether from :meth:`feed` or :meth:`complete`;
    - a match less than ``cooldown_s`` after the last fire (of any item) is suppressed, and that item is then
      closed so it cannot fire late with a stale phrase;
    - :meth:`complete` closes the item; deltas or completions that arrive later for a closed item are ignored;
    - at most :data:`MAX_OPEN_ITEMS` items are open; the oldest is closed (without firing) to make room;
    - the last :data:`MAX_CLOSED_ITEMS` closed ids are remembered (that is the horizon of "later").
    """

    def __init__(self, matcher: PhraseMatcher, cooldown_s: float) -> None:
        if cooldown_s < 0:
            raise ValueError(f"cooldown must be >= 0 seconds, got {cooldown_s}")
        self.matcher = matcher
        self.cooldown_s = cooldown_s
        self._open: OrderedDict[str, _Item] = OrderedDict()
        # Recently closed ids, so a late delta cannot reopen (and re-fire) an item. Bounded too.
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._last_fire: float | None = None

    def feed(self, item_id: str, delta: str, now: float) -> Match | None:
        """Append ``delta`` to the item's running text; return a match if one is now certain."""
        if item_id in self._closed:
            return None
        item = self._open.get(item_id)
        if item is None:
            item = self._open[item_id] = _Item()
            self._evict()
        item.text += delta
        folded = _fold(item.text)
        words = _words(folded)
        # Only words known to be finished may end a match (see the module docstring for the trade-off).
        limit = len(words) if _last_word_complete(folded) else len(words) - 1
        match = self.matcher.find_words(words, limit)
        return self._fire(item_id, match, now) if match else None

    def complete(self, item_id: str, transcript: str, now: float) -> Match | None:
        """The final transcript replaces the running text; fire if the deltas did not. Then close the item."""
        if item_id in self._closed:
            return None
        self._open.pop(item_id, None)
        match = self.matcher.find(transcript)
        fired = self._fire(item_id, match, now) if match else None
        self._close(item_id)
        return fired

    @property
    def open_items(self) -> int:
        """How many utterances are being tracked (bounded by :data:`MAX_OPEN_ITEMS`)."""
        return len(self._open)

    def _fire(self, item_id: str, match: Match, now: float) -> Match | None:
        self._open.pop(item_id, None)
        self._close(item_id)
        if self._last_fire is not None and now - self._last_fire < self.cooldown_s:
            log.debug("phrase %r in %s suppressed by the %.1f s cooldown", match.phrase, item_id, self.cooldown_s)
            return None
        self._last_fire = now
        log.debug("phrase %r (%s) heard in %s", match.phrase, match.action, item_id)
        return match

    def _close(self, item_id: str) -> None:
        self._closed[item_id] = None
        self._closed.move_to_end(item_id)
        while len(self._closed) > MAX_CLOSED_ITEMS:
            self._closed.popitem(last=False)

    def _evict(self) -> None:
        while len(self._open) > MAX_OPEN_ITEMS:
            stale, _ = self._open.popitem(last=False)
            self._close(stale)
