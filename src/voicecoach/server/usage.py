"""Token accounting in the shape of ``response.done.response.usage`` (realtime-protocol.md §9).

Rules (the published rates, rounded the simple way):

* text: one token per 4 characters (rounded up);
* user audio: 10 tokens per second; assistant audio: 20 tokens per second;
* the *input* of a response is its instructions plus its context: the whole conversation for an in-band
  response, only its ``input`` list for an out-of-band one — the reason bounded windows bound the cost;
* ``cached_tokens`` is the part of the input that repeats, from the start, the previous response's input, in
  whole blocks of 64 tokens, so it is always a subset of ``input_tokens``;
* a response cancelled before any output costs nothing (all-zero usage);
* input transcription is billed apart (tokens or seconds of committed audio, by model: transcription_usage).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..audio.frames import WIRE_RATE

USER_AUDIO_TOKENS_PER_S = 10
ASSISTANT_AUDIO_TOKENS_PER_S = 20
CHARS_PER_TOKEN = 4
CACHE_BLOCK = 64
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


def cached_tokens(previous: Sequence[Segment], current: Sequence[Segment]) -> tuple[int, int]:
    """(text, audio) tokens of ``current`` that repeat ``previous`` from the start, in 64-token blocks."""
    prefix: list[Segment] = []
    for before, now in zip(previous, current, strict=False):
        if before != now:
            break
        prefix.append(now)
    budget = sum(s.text + s.audio for s in prefix) // CACHE_BLOCK * CACHE_BLOCK
    cached_text = cached_audio = 0
    for seg in prefix:  # fill the cached budget in context order
        take_text = min(seg.text, budget)
        budget -= take_text
        take_audio = min(seg.audio, budget)
        budget -= take_audio
        cached_text += take_text
        cached_audio += take_audio
    return cached_text, cached_audio


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
