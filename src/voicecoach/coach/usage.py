"""What responses cost: prices per model and a running total from ``response.done`` usage.

Pure: no I/O. Prices are USD per 1M tokens from realtime-protocol.md §9. They are estimates for the UI (the
bill is the provider's), so odd or missing numbers in a ``usage`` dict count as zero instead of raising.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..protocol.server_events import Response
from .actions import Metric

DEFAULT_MODEL = "gpt-realtime-1.5"
_PER_TOKEN = 1 / 1_000_000


class Prices(BaseModel):
    """USD per 1M tokens. Defaults are gpt-realtime-1.5's. ``*_cached`` prices apply to cached input tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text_in: float = Field(default=4.00, ge=0)
    text_cached: float = Field(default=0.40, ge=0)
    text_out: float = Field(default=16.00, ge=0)
    audio_in: float = Field(default=32.00, ge=0)
    audio_cached: float = Field(default=0.40, ge=0)
    audio_out: float = Field(default=64.00, ge=0)
    image_in: float = Field(default=5.00, ge=0)
    image_cached: float = Field(default=0.50, ge=0)


_MINI = Prices(
    text_in=0.60,
    text_cached=0.06,
    text_out=2.40,
    audio_in=10.00,
    audio_cached=0.30,
    audio_out=20.00,
    image_in=0.80,
    image_cached=0.08,
)

LOCAL_MODEL = "local"  # the price list of voicecoach run --local (and its transcription: cost.py)
PRICE_TABLE: dict[str, Prices] = {
    "gpt-realtime-1.5": Prices(),
    "gpt-realtime-2": Prices(text_out=24.00),
    "gpt-realtime-2.1": Prices(text_out=24.00),
    # §9 marks this one UNCONFIRMED (third-party copy); its figures equal 1.5's.
    "gpt-realtime": Prices(),
    "gpt-realtime-2.1-mini": _MINI,
    # No published cached-image price: charge cached images at the full image rate, so we never under-report.
    "gpt-realtime-mini": _MINI.model_copy(update={"image_cached": 0.80}),
    # Takes no image input, hence no image prices.
    "gpt-4o-mini-realtime-preview": Prices(
        text_in=0.60,
        text_cached=0.30,
        text_out=2.40,
        audio_in=10.00,
        audio_cached=0.30,
        audio_out=20.00,
        image_in=0.0,
        image_cached=0.0,
    ),
    # voicecoach run --local: tokens are counted as the protocol reports them, and cost nothing.
    LOCAL_MODEL: Prices(
        text_in=0.0,
        text_cached=0.0,
        text_out=0.0,
        audio_in=0.0,
        audio_cached=0.0,
        audio_out=0.0,
        image_in=0.0,
        image_cached=0.0,
    ),
    # Shut down, but kept so that old session logs are priced right rather than at the 1.5 defaults.
    "gpt-4o-realtime-preview": Prices(
        text_in=5.00,
        text_cached=2.50,
        text_out=20.00,
        audio_in=40.00,
        audio_cached=2.50,
        audio_out=80.00,
        image_in=0.0,
        image_cached=0.0,
    ),
}


def prices_for(model: str) -> Prices:
    """Prices for ``model``: an exact match, else the longest known name it extends, else the 1.5 defaults.

    "Extends" means the known name followed by ``-`` (a dated snapshot such as ``gpt-realtime-2025-08-28``),
    so that snapshot resolves to ``gpt-realtime`` and not to ``gpt-realtime-2`` of which it is a raw prefix.
    """
    name = model.strip().lower()
    if name in PRICE_TABLE:
        return PRICE_TABLE[name]
    known = [k for k in PRICE_TABLE if name.startswith(k + "-")]
    return PRICE_TABLE[max(known, key=len)] if known else PRICE_TABLE[DEFAULT_MODEL]


def details(container: Any, key: str) -> Mapping[str, Any]:
    """``container[key]`` when it is a mapping, else ``{}`` (a usage dict's ``*_token_details``)."""
    value = container.get(key) if isinstance(container, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def count(container: Mapping[str, Any], key: str) -> float:
    """A token count, or 0 for anything that is not a finite non-negative number (None, str, bool, NaN...)."""
    value = container.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return value if math.isfinite(value) and value > 0 else 0


_MODALITIES = ("text_tokens", "audio_tokens", "image_tokens")


def cached_split(inp: Mapping[str, Any]) -> tuple[float, float, float]:
    """Cached (text, audio, image) input tokens of ``input_token_details``, each clamped to its input count.

    From ``cached_tokens_details`` when given; a bare ``cached_tokens`` total (no details) is laid over the
    prefix's modalities in order, text first: the instructions and the context that a prompt cache serves are
    text. Without this a usage that only says ``cached_tokens`` would be billed at the full rate.
    """
    inputs = [count(inp, m) for m in _MODALITIES]
    cached = details(inp, "cached_tokens_details")
    if cached:
        text, audio, image = (min(count(cached, m), n) for m, n in zip(_MODALITIES, inputs, strict=True))
        return text, audio, image
    left = min(count(inp, "cached_tokens"), sum(inputs))
    split = []
    for n in inputs:
        take = min(n, left)
        split.append(take)
        left -= take
    return split[0], split[1], split[2]


def cost_usd(usage: Mapping[str, Any], prices: Prices) -> float:
    """The cost of one response from its ``response.done`` ``usage`` (GA shape). Never raises.

    Cached tokens are a subset of input tokens (§9): each modality's cached count is billed at the cached rate
    and the rest at the full rate (:func:`cached_split`). A cached count larger than its input count is clamped.
    """
    inp = details(usage, "input_token_details")
    out = details(usage, "output_token_details")
    total = 0.0
    rates = (
        (prices.text_in, prices.text_cached),
        (prices.audio_in, prices.audio_cached),
        (prices.image_in, prices.image_cached),
    )
    for modality, hit, (full, cheap) in zip(_MODALITIES, cached_split(inp), rates, strict=True):
        total += (count(inp, modality) - hit) * full + hit * cheap
    total += count(out, "text_tokens") * prices.text_out + count(out, "audio_tokens") * prices.audio_out
    return total * _PER_TOKEN


@dataclass
class UsageTotals:
    """Token counts and cost summed over a session's responses (cancelled ones bill too: add them)."""

    responses: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    input_text: int = 0
    input_audio: int = 0
    cached: int = 0
    # Of ``cached``, by modality (not compared: a figure derived from the others, added after them).
    cached_text: int = field(default=0, compare=False)
    cached_audio: int = field(default=0, compare=False)
    output_text: int = 0
    output_audio: int = 0
    cost_usd: float = 0.0

    def add(self, usage: Mapping[str, Any], prices: Prices) -> float:
        """Add one response's usage; return that response's cost. Never raises."""
        inp = details(usage, "input_token_details")
        out = details(usage, "output_token_details")
        top = usage if isinstance(usage, Mapping) else {}
        self.responses += 1
        self.input_tokens += int(count(top, "input_tokens"))
        self.output_tokens += int(count(top, "output_tokens"))
        self.input_text += int(count(inp, "text_tokens"))
        self.input_audio += int(count(inp, "audio_tokens"))
        self.cached += int(count(inp, "cached_tokens"))
        cached_text, cached_audio, _ = cached_split(inp)
        self.cached_text += int(cached_text)
        self.cached_audio += int(cached_audio)
        self.output_text += int(count(out, "text_tokens"))
        self.output_audio += int(count(out, "audio_tokens"))
        cost = cost_usd(usage, prices)
        self.cost_usd += cost
        return cost


def response_metrics(
    response: Response, totals: UsageTotals, prices: Prices, *, others_usd: float = 0.0
) -> list[Metric]:
    """Add a finished response's usage to ``totals``; its cost and input tokens as figures (none without usage).

    ``total_usd`` in the figure's data is the run's whole cost: these responses plus ``others_usd`` (the
    channels' transcription, :mod:`.cost`)."""
    if response.usage is None:
        return []
    cost = totals.add(response.usage.model_dump(), prices)
    tags = {"response_id": response.id, "total_usd": totals.cost_usd + others_usd, "status": response.status}
    return [
        Metric("response.cost_usd", cost, tags),
        Metric("response.input_tokens", response.usage.input_tokens, {"response_id": response.id}),
    ]
