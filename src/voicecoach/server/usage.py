"""Token accounting in the shape of ``response.done.response.usage`` (realtime-protocol.md §9).

Rules (the published rates, rounded the simple way):

* text: one token per 4 characters (rounded up);
* user audio: 10 tokens per second; assistant audio: 20 tokens per second;
* the *input* of a response is its instructions plus its context: the whole conversation for an in-band
  response, only its ``input`` list for an out-of-band one — the reason bounded windows bound the cost;
* ``cached_tokens`` (:class:`PromptCache`) is the longest prefix the input shares with the input of *any* of
  the session's last :data:`CACHE_PROMPTS` responses, rounded down to whole blocks by :data:`RECORDED_RULE`:
  64-token blocks, from the first block on. It is always a subset of ``input_tokens``;
* a response cancelled before any output costs nothing (all-zero usage);
* input transcription is billed apart (tokens or seconds of committed audio, by model: transcription_usage).

The prompt cache, what is recorded and what is not:

* RECORDED (realtime-protocol.md §4.3, a real GA ``response.done``): 64 of 132 input tokens cached (all audio),
  so the Realtime API caches prompts far shorter than 1,024 tokens, and 64 tokens is a block it reports.
  That recording is why the rule here is 64-token blocks with no 1,024-token minimum.
* DOCUMENTED for the text APIs (the prompt-caching guide): caching starts at 1,024 tokens and grows in
  128-token steps. The recording contradicts its minimum for the Realtime API, so it is not the rule here; it is
  kept as :data:`DOCUMENTED_RULE` for comparison (``cached_tokens(..., rule=DOCUMENTED_RULE)``). For the
  cost of a hint with a context of thousands of tokens the two rules differ by less than one 128-token block.
* UNCONFIRMED: whether the Realtime step is always 64 (one recording shows one block); whether out-of-band
  responses (``conversation: "none"``) hit the same cache as in-band ones (assumed: yes, the cache is of the
  prompt's tokens); how long an entry lives (the text APIs say minutes of inactivity; here: the last 64
  prompts of the session, however old); whether a new session (a rollover) finds the old one's entries (the
  text APIs' cache is not per session; here it is, so a fresh session starts cold: the conservative side).
* Matching is by whole input pieces (the instructions, each item): a piece that differs from its first token on
  or half way through counts as not shared, where the real cache would share its first tokens. Conservative
  too, and exact for a hint, whose instructions and context are repeated whole and whose window changes.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..audio.frames import WIRE_RATE

USER_AUDIO_TOKENS_PER_S = 10
ASSISTANT_AUDIO_TOKENS_PER_S = 20
CHARS_PER_TOKEN = 4
CACHE_BLOCK = 64
CACHE_PROMPTS = 64  # the prompts a session remembers for its prompt cache (bounded memory and matching time)
RATE_LIMIT_TOKENS = 40_000


def text_tokens(text: str | None) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def audio_tokens(samples: int, per_second: int) -> int:
    return round(samples / WIRE_RATE * per_second)


def fingerprint(*parts: object) -> str:
    """A short stable key for a piece of context (cache matching compares keys, not content)."""
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Segment:
    """One piece of a response's input (instructions, an item) with its token counts."""

    key: str
    text: int = 0
    audio: int = 0


@dataclass(frozen=True)
class CacheRule:
    """How a shared prefix of ``shared`` tokens is reported cached: whole ``block``s, none below ``minimum``."""

    block: int
    minimum: int

    def cached(self, shared: int) -> int:
        tokens = shared // self.block * self.block
        return tokens if tokens >= self.minimum else 0


RECORDED_RULE = CacheRule(block=CACHE_BLOCK, minimum=CACHE_BLOCK)  # the rule in force (see the docstring)
DOCUMENTED_RULE = CacheRule(block=128, minimum=1024)  # the text APIs' documented rule, for comparison


def shared_prefix(previous: Sequence[Segment], current: Sequence[Segment]) -> int:
    """How many leading segments ``current`` shares with ``previous``."""
    n = 0
    for before, now in zip(previous, current, strict=False):
        if before != now:
            break
        n += 1
    return n


def cached_tokens(
    previous: Sequence[Segment], current: Sequence[Segment], rule: CacheRule = RECORDED_RULE
) -> tuple[int, int]:
    """(text, audio) tokens of ``current`` that repeat ``previous`` from the start, in whole blocks of ``rule``."""
    prefix = current[: shared_prefix(previous, current)]
    budget = rule.cached(sum(s.text + s.audio for s in prefix))
    cached_text = cached_audio = 0
    for seg in prefix:  # fill the cached budget in context order
        take_text = min(seg.text, budget)
        budget -= take_text
        take_audio = min(seg.audio, budget)
        budget -= take_audio
        cached_text += take_text
        cached_audio += take_audio
    return cached_text, cached_audio


class PromptCache:
    """The inputs of a session's latest responses, to find what a new one repeats (the prompt cache).

    :meth:`match` gives the remembered prompt sharing the longest prefix (in tokens) with a new one: what
    :func:`cached_tokens` compares against. :meth:`remember` keeps the last ``size`` prompts; a prompt that
    another one extends is dropped (whatever shares a prefix with it shares at least as much with the longer
    one), so an in-band conversation that grows turn by turn holds one entry, not one per turn.
    """

    def __init__(self, size: int = CACHE_PROMPTS) -> None:
        self._prompts: deque[tuple[Segment, ...]] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._prompts)

    def match(self, segments: Sequence[Segment]) -> tuple[Segment, ...]:
        """The remembered prompt with the longest shared prefix in tokens (the newest on a tie); () for none."""
        best: tuple[Segment, ...] = ()
        best_tokens = 0
        for prompt in reversed(self._prompts):
            n = shared_prefix(prompt, segments)
            tokens = sum(s.text + s.audio for s in segments[:n])
            if tokens > best_tokens:
                best, best_tokens = prompt, tokens
        return best

    def remember(self, segments: Sequence[Segment]) -> None:
        prompt = tuple(segments)
        kept = [p for p in self._prompts if shared_prefix(p, prompt) < len(p)]  # drop those it extends
        if len(kept) != len(self._prompts):
            self._prompts = deque(kept, maxlen=self._prompts.maxlen)
        self._prompts.append(prompt)


@dataclass
class Usage:
    input_text: int = 0
    input_audio: int = 0
    cached_text: int = 0
    cached_audio: int = 0
    output_text: int = 0
    output_audio: int = 0

    @classmethod
    def for_input(cls, segments: Sequence[Segment], previous: Sequence[Segment]) -> Usage:
        cached_text, cached_audio = cached_tokens(previous, segments)
        return cls(
            input_text=sum(s.text for s in segments),
            input_audio=sum(s.audio for s in segments),
            cached_text=cached_text,
            cached_audio=cached_audio,
        )

    @property
    def input_tokens(self) -> int:
        return self.input_text + self.input_audio

    @property
    def output_tokens(self) -> int:
        return self.output_text + self.output_audio

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def wire(self) -> dict[str, Any]:
        return {
            "total_tokens": self.total_tokens,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "input_token_details": {
                "text_tokens": self.input_text,
                "audio_tokens": self.input_audio,
                "image_tokens": 0,
                "cached_tokens": self.cached_text + self.cached_audio,
                "cached_tokens_details": {
                    "text_tokens": self.cached_text,
                    "audio_tokens": self.cached_audio,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {"text_tokens": self.output_text, "audio_tokens": self.output_audio},
        }


def zero_usage() -> dict[str, Any]:
    return Usage().wire()


def transcription_usage(samples: int, transcript: str, kind: str = "tokens") -> dict[str, Any]:
    """``usage`` of ``conversation.item.input_audio_transcription.completed`` (realtime-protocol.md §4.3).

    ``kind`` ``"tokens"`` (token-billed models: audio in at 10 tokens/s, the transcript out) or ``"duration"``
    (per-minute models: ``{"type": "duration", "seconds": <committed audio>}``); see catalog.usage_kind."""
    if kind == "duration":
        return {"type": "duration", "seconds": round(samples / WIRE_RATE, 3)}
    audio = audio_tokens(samples, USER_AUDIO_TOKENS_PER_S)
    out = text_tokens(transcript)
    return {
        "type": "tokens",
        "total_tokens": audio + out,
        "input_tokens": audio,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio},
        "output_tokens": out,
    }


class RateLimiter:
    """The ``tokens`` budget reported in ``rate_limits.updated`` (a sliding one-minute window)."""

    def __init__(self, limit: int = RATE_LIMIT_TOKENS) -> None:
        self.limit = limit
        self._spent: list[tuple[float, int]] = []

    def spend(self, tokens: int, now: float) -> dict[str, Any]:
        self._spent = [(t, n) for t, n in self._spent if now - t < 60.0]
        self._spent.append((now, tokens))
        used = sum(n for _, n in self._spent)
        reset = 60.0 - (now - self._spent[0][0]) if used else 0.0
        return {
            "name": "tokens",
            "limit": self.limit,
            "remaining": max(0, self.limit - used),
            "reset_seconds": round(max(0.0, reset * min(1.0, used / self.limit)), 3),
        }
