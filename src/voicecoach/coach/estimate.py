"""A hint response's cost before (or without) its ``usage``, and the context's share of a hint's input.

Pure: no I/O. A response cut off by quitting or by the session ending never gets its ``response.done``, yet
the API bills what it generated (realtime-protocol.md §9: a cancelled response still bills its output). So
every hint response is priced from what arrived until its usage does: output text at 4 characters a token,
output audio at 20 tokens a second (the audio received where the transport says, else the text at the run's
speech rate, never less than what was played), and input from the request itself (its text / 4, per piece,
as the local server counts). The prefix the previous hint had cached is assumed cached again. These figures
are estimates and are marked so (:attr:`HintResponse.estimated`); usage, when it comes, replaces them.

UNCONFIRMED: whether the API bills the input of a response cancelled before any output; like the local
server, a response with nothing generated is priced at zero here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..protocol import client_events as ce
from .conversation import Message
from .played import ASSISTANT_AUDIO_TOKENS_PER_S, MS_PER_CHAR, Speech, audio_ms_of_tokens
from .usage import Prices, cached_split, cost_usd, count, details

CHARS_PER_TOKEN = 4


def text_tokens(text: str | None) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


@dataclass(frozen=True)
class RequestSize:
    """A hint request in estimated text tokens: its instructions, its context message, and all of its text."""

    instructions: int = 0
    context: int = 0
    total: int = 0


def request_size(event: ce.ResponseCreate, context_text: str = "") -> RequestSize:
    """Token estimates of ``event``'s instructions and text input; the context is the input message holding
    ``context_text`` (the coach sends it first, before the transcript window)."""
    params = event.response
    if params is None:
        return RequestSize()
    instructions = text_tokens(params.instructions)
    total, context = instructions, 0
    for item in params.input or []:
        if isinstance(item, ce.ItemReference):
            continue  # a user turn by reference is audio the server holds: not text we can count
        tokens = sum(text_tokens(part.text) for part in item.content)
        total += tokens
        if context_text and not context and any(context_text in part.text for part in item.content):
            context = tokens
    return RequestSize(instructions, context, total)


@dataclass
class HintResponse:
    """One hint response, from ``response.created`` until it is settled (usage came) and over (not playing)."""

    size: RequestSize
    message: Message  # the live transcript line: its text is what has been generated so far
    prices: Prices
    speech: Speech = field(default_factory=Speech)
    usage: Mapping[str, Any] | None = None  # response.done's, once it came
    played_ms: float = 0.0  # what was heard of it, once it was cut

    @property
    def estimated(self) -> bool:
        return self.usage is None

    @property
    def generated_text(self) -> str:
        return self.message.generated_text if self.message.generated_text is not None else self.message.text

    def estimated_usage(self, ms_per_char: float, cached_text: int) -> dict[str, Any]:
        """A ``usage`` dict (GA shape) for what this response generated so far; all zero if nothing was."""
        text = self.generated_text
        if not text and self.speech.audio_ms <= 0:
            return {"input_tokens": 0, "output_tokens": 0, "estimated": True}
        audio_ms = max(self.speech.audio_ms, self.played_ms, len(text) * ms_per_char)
        out_audio = round(audio_ms / 1000 * ASSISTANT_AUDIO_TOKENS_PER_S)
        out_text = text_tokens(text)
        inp = self.size.total
        cached = min(cached_text, inp)
        return {
            "input_tokens": inp,
            "output_tokens": out_text + out_audio,
            "input_token_details": {
                "text_tokens": inp,
                "audio_tokens": 0,
                "cached_tokens": cached,
                "cached_tokens_details": {"text_tokens": cached, "audio_tokens": 0},
            },
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
            "estimated": True,
        }


def context_cost(size: RequestSize, usage: Mapping[str, Any], prices: Prices) -> float:
    """The context's share of a response's input, at the rates charged (USD).

    The prefix is the instructions, then the context: the cached text tokens cover the instructions first, then
    the context. Our 4-characters-a-token counts are scaled to the server's text-token count, so the share is
    right whatever the tokenizer."""
    inp = details(usage, "input_token_details")
    text = count(inp, "text_tokens")
    if size.context <= 0 or size.total <= 0 or text <= 0:
        return 0.0
    hit, _, _ = cached_split(inp)
    scale = text / size.total
    context = min(size.context * scale, text)
    cached = min(max(0.0, min(hit, text) - size.instructions * scale), context)
    return (cached * prices.text_cached + (context - cached) * prices.text_in) / 1_000_000


def generated_audio_ms(usage: Mapping[str, Any]) -> float | None:
    """The audio a response generated, from its usage (None when usage names no audio)."""
    tokens = count(details(usage, "output_token_details"), "audio_tokens")
    return audio_ms_of_tokens(tokens) if tokens > 0 else None


@dataclass
class SpeechRate:
    """Milliseconds of audio per character of transcript, from the hints that finished this run."""

    audio_ms: float = 0.0
    chars: int = 0

    def add(self, audio_ms: float | None, text: str) -> None:
        if audio_ms and text.strip():
            self.audio_ms += audio_ms
            self.chars += len(text)

    @property
    def ms_per_char(self) -> float:
        return self.audio_ms / self.chars if self.chars >= 20 else MS_PER_CHAR


def priced(record: HintResponse, rate: SpeechRate, cached_text: int) -> tuple[float, float]:
    """(cost, context cost) of ``record``: from its usage if it came, else estimated."""
    usage = record.usage if record.usage is not None else record.estimated_usage(rate.ms_per_char, cached_text)
    return cost_usd(usage, record.prices), context_cost(record.size, usage, record.prices)
