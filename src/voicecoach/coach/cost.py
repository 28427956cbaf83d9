"""The cost meter: what hints cost (:mod:`.usage`) plus what each channel's input transcription costs.

Pure: no I/O. Both links transcribe what they hear and bill it at the *transcription* model's price, not the
realtime model's (realtime-protocol.md §7.2): the microphone on the main session
(``audio.input.transcription``), the other side on its transcription-only session. So the meter keeps one
:class:`TranscriptionTotals` per channel next to the hints' :class:`~.usage.UsageTotals`.

Where the cost of one utterance comes from, in order (``conversation.item.input_audio_transcription.completed``):

1. ``usage`` of ``{"type": "tokens", ...}``: input audio/text tokens and output (transcript) tokens times the
   model's per-token prices;
2. ``usage`` of ``{"type": "duration", "seconds": s}``: s / 60 times the model's price per minute;
3. no ``usage`` (2025-05 payloads lacked it, §4.3): the committed speech, from the turn's VAD events
   (``audio_end_ms - audio_start_ms``, what the server bills), times the price per minute.

Hints are priced from ``response.done`` usage; until it comes (and for ever, when a quit or the end of the session
cuts the hint off first) from what the response generated, marked as an estimate (:mod:`.estimate`). The
context's share of every hint's input is kept apart, at the rate charged for it (cached or not).

Prices (USD): gpt-4o-mini-transcribe ≈ $0.003/min with audio input at $3/1M tokens, gpt-4o-transcribe
≈ $0.006/min, gpt-live-transcribe and gpt-realtime-whisper $0.017/min (next-wave.md §2.3, realtime-protocol.md
§9). The text prices of the two gpt-4o transcribers (prompt text in, transcript out) are OpenAI's list prices,
which the shared notes do not record: UNCONFIRMED. Like every figure here they are estimates for the UI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..protocol.server_events import Response
from .conversation import Message
from .estimate import HintResponse, RequestSize, SpeechRate, context_cost, generated_audio_ms, priced
from .usage import Prices, UsageTotals, cached_split, details

Channel = Literal["you", "them"]
CHANNELS: tuple[Channel, ...] = ("you", "them")
DEFAULT_TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"
_PER_TOKEN = 1 / 1_000_000


class TranscriptionPrices(BaseModel):
    """USD per 1M tokens (``audio_in``, ``text_in``, ``text_out``) and per minute of audio (``per_minute``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    audio_in: float = Field(default=0.0, ge=0)
    text_in: float = Field(default=0.0, ge=0)
    text_out: float = Field(default=0.0, ge=0)
    per_minute: float = Field(ge=0)


_MINI_TRANSCRIBE = TranscriptionPrices(audio_in=3.00, text_in=1.25, text_out=5.00, per_minute=0.003)
_4O_TRANSCRIBE = TranscriptionPrices(audio_in=6.00, text_in=2.50, text_out=10.00, per_minute=0.006)
_PER_MINUTE_017 = TranscriptionPrices(per_minute=0.017)

TRANSCRIPTION_PRICE_TABLE: dict[str, TranscriptionPrices] = {
    "gpt-4o-mini-transcribe": _MINI_TRANSCRIBE,
    "gpt-4o-transcribe": _4O_TRANSCRIBE,
    "gpt-4o-transcribe-diarize": _4O_TRANSCRIBE,
    # No published price in the shared notes: priced as gpt-4o-transcribe, so as not to under-report.
    "gpt-transcribe": _4O_TRANSCRIBE,
    "whisper-1": TranscriptionPrices(per_minute=0.006),
    "gpt-live-transcribe": _PER_MINUTE_017,
    "gpt-realtime-whisper": _PER_MINUTE_017,
    "local": TranscriptionPrices(per_minute=0.0),  # voicecoach run --local (usage.LOCAL_MODEL)
}


def transcription_prices_for(model: str) -> TranscriptionPrices:
    """Prices for a transcription model: exact, else the longest known name it extends with ``-`` (a dated
    snapshot such as ``gpt-4o-mini-transcribe-2025-12-15``), else gpt-4o-mini-transcribe's."""
    name = model.strip().lower()
    if name in TRANSCRIPTION_PRICE_TABLE:
        return TRANSCRIPTION_PRICE_TABLE[name]
    known = [k for k in TRANSCRIPTION_PRICE_TABLE if name.startswith(k + "-")]
    return TRANSCRIPTION_PRICE_TABLE[max(known, key=len) if known else DEFAULT_TRANSCRIPTION_MODEL]


def _number(container: Mapping[str, Any], key: str) -> float:
    """A finite non-negative number, or 0 for anything else (None, str, bool, NaN...): never raises."""
    value = container.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) and value > 0 else 0.0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def transcription_cost(usage: Any, prices: TranscriptionPrices, speech_seconds: float | None) -> tuple[float, float]:
    """(USD, seconds of audio billed) for one transcribed utterance; see the module docstring for the order."""
    usage = _mapping(usage)
    if usage.get("type") == "duration" or ("seconds" in usage and "input_tokens" not in usage):
        seconds = _number(usage, "seconds")
        return seconds / 60 * prices.per_minute, seconds
    if "input_tokens" in usage or "output_tokens" in usage:
        details = _mapping(usage.get("input_token_details"))
        audio, text = _number(details, "audio_tokens"), _number(details, "text_tokens")
        if not details:  # no split given: all input is the audio
            audio = _number(usage, "input_tokens")
        cost = audio * prices.audio_in + text * prices.text_in + _number(usage, "output_tokens") * prices.text_out
        if cost == 0.0 and prices.audio_in == 0.0 and speech_seconds:
            # A per-minute model that reported tokens: its tokens have no price, its minutes do.
            return speech_seconds / 60 * prices.per_minute, speech_seconds
        # User audio is ~10 tokens/s (realtime-protocol.md §9): the seconds are for the summary only.
        return cost * _PER_TOKEN, audio / 10
    seconds = max(0.0, speech_seconds or 0.0)
    return seconds / 60 * prices.per_minute, seconds


@dataclass
class TranscriptionTotals:
    """One channel's transcription: utterances billed, seconds of audio, USD."""

    model: str = DEFAULT_TRANSCRIPTION_MODEL
    utterances: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0
    from_usage: int = 0  # how many of them were priced from the server's ``usage`` (the rest: by the minute)

    def add(self, usage: Any, speech_seconds: float | None) -> float:
        cost, seconds = transcription_cost(usage, transcription_prices_for(self.model), speech_seconds)
        self.utterances += 1
        self.seconds += seconds
        self.cost_usd += cost
        self.from_usage += 1 if _mapping(usage) else 0
        return cost


@dataclass(frozen=True)
class CostBreakdown:
    """The run's cost in parts, USD: ``hints`` includes ``context``; :attr:`total` is hints + you + them."""

    hints: float = 0.0
    context: float = 0.0  # the context files' share of the hints' input
    you: float = 0.0  # transcription of the microphone
    them: float = 0.0  # transcription of the other side
    estimated_hints: int = 0  # hints priced from what they generated: their usage never came

    @property
    def total(self) -> float:
        return self.hints + self.you + self.them


MAX_OPEN = 256  # hint responses kept for pricing at most; older ones without usage are frozen at their estimate


@dataclass
class CostMeter:
    """The run's cost: hints (``responses``) and each channel's transcription; :attr:`total_usd` is the sum.

    Hint responses are followed from the request (:meth:`asked`) through ``response.created``
    (:meth:`opened`) and ``response.done`` (:meth:`settled`) to the end of their sound (:meth:`over`); until
    usage comes each one counts at its estimate (:mod:`.estimate`)."""

    responses: UsageTotals = field(default_factory=UsageTotals)
    transcription: dict[Channel, TranscriptionTotals] = field(
        default_factory=lambda: {c: TranscriptionTotals() for c in CHANNELS}
    )
    hints: dict[str, HintResponse] = field(default_factory=dict)  # by response id: not yet settled and over
    context_usd: float = 0.0  # the context's share of settled hints
    rate: SpeechRate = field(default_factory=SpeechRate)
    _asked: dict[int, RequestSize] = field(default_factory=dict)  # by hint number, until response.created
    _over: set[str] = field(default_factory=set)  # response ids whose sound has ended (or was cut)
    _frozen: tuple[float, float, int] = (0.0, 0.0, 0)  # (USD, context USD, count) of estimates let go
    _cached_text: int = 0  # the last settled hint's cached text tokens: its prefix is likely cached again

    # --- a hint's life ----------------------------------------------------------------------------------

    def asked(self, number: int, size: RequestSize) -> None:
        self._asked[number] = size
        for old in [n for n in self._asked if n < number - 16]:  # requests that never got a response
            del self._asked[old]

    def opened(self, number: int, response_id: str, message: Message, prices: Prices) -> HintResponse:
        """Hint ``number`` is response ``response_id``: it is priced from now on, from ``message``'s text."""
        record = HintResponse(self._asked.pop(number, RequestSize()), message, prices)
        self.hints[response_id] = record
        if len(self.hints) > MAX_OPEN:
            self._freeze(next(iter(self.hints)))
        return record

    def settled(self, response: Response) -> None:
        """Its ``response.done`` came: usage replaces the estimate (the cost itself is in :attr:`responses`)."""
        record = self.hints.get(response.id)
        if record is None or response.usage is None:
            return
        usage = response.usage.model_dump()
        record.usage = usage
        record.speech.generated_audio_ms = generated_audio_ms(usage)
        self.context_usd += context_cost(record.size, usage, record.prices)
        self._cached_text = int(cached_split(details(usage, "input_token_details"))[0])
        if response.status == "completed":
            self.rate.add(record.speech.generated_audio_ms, record.generated_text)
        if response.id in self._over:
            self._drop(response.id)

    def over(self, response_id: str, played_ms: float = 0.0) -> None:
        """Its sound ended or was cut (``played_ms`` heard); priced at its estimate until (unless) usage comes."""
        record = self.hints.get(response_id)
        if record is None:
            return
        record.played_ms = max(record.played_ms, played_ms)
        self._over.add(response_id)
        if record.usage is not None:
            self._drop(response_id)

    def _drop(self, response_id: str) -> None:
        self.hints.pop(response_id, None)
        self._over.discard(response_id)

    def _freeze(self, response_id: str) -> None:
        record = self.hints[response_id]
        if record.usage is None:
            cost, context = priced(record, self.rate, self._cached_text)
            usd, context_usd, n = self._frozen
            self._frozen = (usd + cost, context_usd + context, n + 1)
        self._drop(response_id)

    # --- totals -----------------------------------------------------------------------------------------

    def _estimates(self) -> tuple[float, float, int]:
        """(USD, context USD, count) of the hints priced by estimate: no usage (yet)."""
        usd, context, n = self._frozen
        for record in self.hints.values():
            if record.usage is None:
                cost, share = priced(record, self.rate, self._cached_text)
                usd, context, n = usd + cost, context + share, n + (cost > 0)
        return usd, context, n

    @property
    def total_usd(self) -> float:
        estimated, _, _ = self._estimates()
        return self.responses.cost_usd + estimated + sum(t.cost_usd for t in self.transcription.values())

    def breakdown(self) -> CostBreakdown:
        """The parts for the summary: hints (estimates included), of which context; each channel's transcription."""
        estimated, context, n = self._estimates()
        return CostBreakdown(
            hints=self.responses.cost_usd + estimated,
            context=self.context_usd + context,
            you=self.transcription["you"].cost_usd,
            them=self.transcription["them"].cost_usd,
            estimated_hints=n,
        )

    def split(self) -> dict[str, float]:
        """For the views and the summary: ``{"hints": …, "transcription_you": …, "transcription_them": …,
        "total": …}`` in USD."""
        estimated, _, _ = self._estimates()
        parts = {"hints": self.responses.cost_usd + estimated}
        parts |= {f"transcription_{c}": t.cost_usd for c, t in self.transcription.items()}
        return {**parts, "total": self.total_usd}
