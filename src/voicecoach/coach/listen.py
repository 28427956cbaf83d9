"""What the coach listens for on the microphone: trigger phrases while it is silent, interrupts while it may be
heard. Only the microphone's transcripts come here; the other side's ("them") never do, so their "good question"
cannot fire a hint and their "got it" cannot stop one.

Pure: no I/O and no clock. :class:`Listener` turns a streamed delta or a final transcript into a :class:`Heard`
(or None); the coach decides what that does (the echo guard may still hold or drop a trigger, :mod:`.echo_guard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .phrases import Match, PhraseMatcher, TriggerDetector
from .settings import CoachSettings, Tier

INTERRUPT_COOLDOWN_S = 0.3  # no cooldown worth the name: "stop" twice in a row should both work


@dataclass(frozen=True)
class Heard:
    """A phrase heard on the microphone: a hint tier, or ``"interrupt"``.

    ``item_id`` is the utterance; ``streamed`` says it matched on a delta (the utterance is still unfinished)."""

    action: Tier | Literal["interrupt"]
    phrase: str
    item_id: str
    streamed: bool


class Listener:
    """The microphone's trigger and interrupt detectors. Raises ValueError for bad phrases (at construction)."""

    def __init__(self, settings: CoachSettings) -> None:
        triggers = PhraseMatcher({"quick": settings.quick_phrases, "full": settings.full_phrases})
        interrupts = PhraseMatcher({"interrupt": settings.interrupt_phrases})
        self.triggers = TriggerDetector(triggers, settings.cooldown_seconds)
        self.interrupts = TriggerDetector(interrupts, INTERRUPT_COOLDOWN_S)

    def delta(self, item_id: str, delta: str, now: float, *, coach_audible: bool) -> Heard | None:
        # Self-hearing guard: while the coach talks, the mic may carry its voice; only interrupts count then.
        if coach_audible:
            return _heard(self.interrupts.feed(item_id, delta, now), item_id, streamed=True)
        # Interrupt phrases are not fed while silent: "stop" said then must not use up the utterance's one
        # interrupt, in case the coach starts talking before the person finishes.
        return _heard(self.triggers.feed(item_id, delta, now), item_id, streamed=True)

    def final(self, item_id: str, transcript: str, now: float, *, coach_audible: bool) -> Heard | None:
        if coach_audible:
            match = self.interrupts.complete(item_id, transcript, now)
            self.triggers.complete(item_id, "", now)  # closes it: no trigger from what was said over the coach
            return _heard(match, item_id, streamed=False)
        return _heard(self.triggers.complete(item_id, transcript, now), item_id, streamed=False)


def _heard(match: Match | None, item_id: str, *, streamed: bool) -> Heard | None:
    if match is None:
        return None
    action: Tier | Literal["interrupt"] = (
        "interrupt" if match.action == "interrupt" else "quick" if match.action == "quick" else "full"
    )
    return Heard(action, match.phrase, item_id, streamed)
