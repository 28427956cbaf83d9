"""Two guards between the channels: loudspeaker echo on the microphone, and the coach's own voice on "them".

Pure: no I/O and no clock; ``now`` and every spoken time are on the coach's clock (:mod:`.channels`).

**The echo guard** (:class:`EchoGuard`). Only the microphone fires triggers, but on loudspeakers the microphone
also hears the other side: their "good question" comes back as ours. A microphone trigger whose phrase the
"them" channel heard within ``ECHO_WINDOW_S`` of the microphone's utterance (their spoken intervals, widened by
the window, overlap) is echo and is dropped. The decision is made when the trigger matches:

- the phrase is already in an overlapping "them" turn: **echo**, dropped at once;
- an overlapping "them" turn is still being said or transcribed (its text may yet hold the phrase): **wait**. The
  trigger is held until that turn's transcript completes (checked again then) or ``ECHO_HOLD_S`` after the
  match, whichever comes first, and then fires unless it turned out to be echo. The hold is the price of
  loudspeakers while the other side talks; a transcript later than the hold lets an echo through;
- otherwise **clear**: it fires at once. This is the headphone case (and any moment the other side is quiet):
  no latency is added.

A "them" turn starting more than the window after the microphone's is not waited for: an echo's source is
heard on "them" first, and its ``speech_started`` has arrived long before the microphone's transcript.

**The self-voice check** (:func:`own_voice`). When hints play through the device whose monitor is captured, the
coach's voice comes back on "them". A "them" utterance whose words are mostly (``OWN_VOICE_SHARE``, in order)
words of a hint playing at the time, or within ``ECHO_WINDOW_S`` of its end, is the coach's own and is dropped.
Short utterances must match entirely, and single words are never dropped (the other side's "yes" while a hint
plays is theirs).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from .phrases import normalize
from .settings import Tier

ECHO_WINDOW_S = 2.0
ECHO_HOLD_S = 2.0
OWN_VOICE_SHARE = 0.6  # of a "them" utterance's words found, in order, in a hint's words
SHORT_UTTERANCE = 4  # words; shorter utterances must match in full
MAX_THEM_TURNS = 32

Verdict = Literal["echo", "wait", "clear"]


@dataclass
class _ThemTurn:
    start: float
    end: float | None = None  # speech stopped (spoken time)
    done_at: float | None = None  # transcript completed or failed
    words: str = ""  # normalized text, padded with spaces for whole-word search

    def span_end(self, now: float) -> float:
        return self.end if self.end is not None else self.done_at if self.done_at is not None else now


@dataclass(frozen=True)
class HeldTrigger:
    """A microphone trigger waiting for the other side's transcript (see the module docstring)."""

    tier: Tier
    phrase: str  # normalized
    item_id: str  # the microphone utterance that said it
    start: float  # its spoken interval
    end: float
    heard_at: float  # when it matched
    until: float  # when it fires whatever "them" says


class EchoGuard:
    """The "them" turns near enough to matter, and the microphone triggers held for them."""

    def __init__(self, window_s: float = ECHO_WINDOW_S, hold_s: float = ECHO_HOLD_S) -> None:
        self.window_s = window_s
        self.hold_s = hold_s
        self._them: OrderedDict[str, _ThemTurn] = OrderedDict()
        self.held: list[HeldTrigger] = []

    # --- the other side's turns -----------------------------------------------------------------------

    def them_started(self, item_id: str, start: float) -> None:
        turn = self._them.get(item_id)
        if turn is None:
            self._them[item_id] = turn = _ThemTurn(start)
            while len(self._them) > MAX_THEM_TURNS:
                self._them.popitem(last=False)
        turn.start = start

    def them_stopped(self, item_id: str, end: float) -> None:
        if (turn := self._them.get(item_id)) is not None:
            turn.end = end

    def them_text(self, item_id: str, text: str, now: float, *, done: bool) -> None:
        """The turn's text so far (or final, ``done``). A turn never started is taken to start now."""
        turn = self._them.get(item_id)
        if turn is None:
            self.them_started(item_id, now)
            turn = self._them[item_id]
        turn.words = f" {normalize(text)} "
        if done:
            turn.done_at = now

    def forget(self, item_id: str) -> None:
        self._them.pop(item_id, None)

    def them_lost(self, now: float) -> None:
        """The "them" link is gone: its unfinished turns will not finish; nothing waits for them."""
        for turn in self._them.values():
            if turn.done_at is None:
                turn.done_at = now

    @property
    def them_open(self) -> int:
        """ "Them" turns whose transcript has not come yet."""
        return sum(1 for t in self._them.values() if t.done_at is None)

    # --- microphone triggers --------------------------------------------------------------------------

    def verdict(self, phrase: str, start: float, end: float, now: float) -> Verdict:
        """Is a microphone ``phrase`` said in [start, end] an echo of the other side (see the module docstring)?"""
        waiting = False
        needle = f" {phrase} "
        for turn in self._them.values():
            if turn.start > end + self.window_s or turn.span_end(now) < start - self.window_s:
                continue
            if needle in turn.words:
                return "echo"
            waiting |= turn.done_at is None
        return "wait" if waiting else "clear"

    def hold(self, tier: Tier, phrase: str, item_id: str, start: float, end: float, now: float) -> HeldTrigger:
        held = HeldTrigger(tier, phrase, item_id, start, end, heard_at=now, until=now + self.hold_s)
        self.held.append(held)
        return held

    def deadline(self) -> float | None:
        return min((h.until for h in self.held), default=None)

    def release(self, now: float) -> tuple[list[HeldTrigger], list[HeldTrigger]]:
        """(to fire, dropped as echo) among the held triggers, decided again now; the rest keep waiting."""
        fire: list[HeldTrigger] = []
        echo: list[HeldTrigger] = []
        keep: list[HeldTrigger] = []
        for held in self.held:
            verdict = self.verdict(held.phrase, held.start, held.end, now)
            if verdict == "echo":
                echo.append(held)
            elif verdict == "clear" or now >= held.until:
                fire.append(held)
            else:
                keep.append(held)
        self.held = keep
        return fire, echo

    def cancel_held(self) -> list[HeldTrigger]:
        """Forget the held triggers (the user asked by key meanwhile, or the link is gone)."""
        held, self.held = self.held, []
        return held


def own_voice(text: str, hints: Iterable[str]) -> bool:
    """True if ``text`` (heard on "them") is mostly the words of one of ``hints``, in order."""
    words = normalize(text).split()
    if len(words) < 2:
        return False
    need = len(words) if len(words) < SHORT_UTTERANCE else OWN_VOICE_SHARE * len(words)
    for hint in hints:
        spoken = normalize(hint).split()
        if not spoken:
            continue
        blocks = SequenceMatcher(None, words, spoken, autojunk=False).get_matching_blocks()
        if sum(b.size for b in blocks) >= need:
            return True
    return False
