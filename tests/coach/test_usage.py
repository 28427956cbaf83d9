"""Prices per model and the cost of a response from its ``response.done`` usage (realtime-protocol.md §9)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from voicecoach.coach.usage import PRICE_TABLE, Prices, UsageTotals, cost_usd, prices_for

# The real GA response.done usage quoted in §4.3 / §9.
WORKED_EXAMPLE: dict[str, Any] = {
    "total_tokens": 320,
    "input_tokens": 132,
    "output_tokens": 188,
    "input_token_details": {
        "text_tokens": 59,
        "audio_tokens": 73,
        "image_tokens": 0,
        "cached_tokens": 64,
        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 64, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 41, "audio_tokens": 147},
}


def test_worked_example_from_the_protocol_notes() -> None:
    assert cost_usd(WORKED_EXAMPLE, prices_for("gpt-realtime-1.5")) == pytest.approx(0.0106136)
    assert cost_usd(WORKED_EXAMPLE, Prices()) == pytest.approx(0.0106136)


def test_defaults_are_gpt_realtime_1_5() -> None:
    assert Prices() == Prices(
        text_in=4.00,
        text_cached=0.40,
        text_out=16.00,
        audio_in=32.00,
        audio_cached=0.40,
        audio_out=64.00,
        image_in=5.00,
        image_cached=0.50,
    )


def test_prices_are_frozen_and_non_negative() -> None:
    with pytest.raises(ValidationError):
        Prices(text_in=-1)
    with pytest.raises(ValidationError):
        Prices().text_in = 1.0  # assigning to a frozen model is the point of the test


def test_the_table_lists_the_models_of_section_9() -> None:
    assert {
        "gpt-realtime-1.5",
        "gpt-realtime-2",
        "gpt-realtime-2.1",
        "gpt-realtime",
        "gpt-realtime-2.1-mini",
        "gpt-realtime-mini",
        "gpt-4o-mini-realtime-preview",
    } <= set(PRICE_TABLE)
    assert PRICE_TABLE["gpt-realtime-2"].text_out == 24.00
    assert PRICE_TABLE["gpt-realtime-2.1-mini"].audio_in == 10.00
    assert PRICE_TABLE["gpt-4o-mini-realtime-preview"].text_cached == 0.30


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-realtime-2.1-mini", "gpt-realtime-2.1-mini"),
        ("gpt-realtime-mini-2025-10-06", "gpt-realtime-mini"),
        ("gpt-realtime-2025-08-28", "gpt-realtime"),  # not gpt-realtime-2, although that is a raw prefix
        ("gpt-realtime-2-2026-01-15", "gpt-realtime-2"),
        ("gpt-realtime-2.1-mini-2026-03-01", "gpt-realtime-2.1-mini"),
        (" GPT-Realtime-2 ", "gpt-realtime-2"),
        ("gpt-4o-mini-realtime-preview-2024-12-17", "gpt-4o-mini-realtime-preview"),
        ("some-future-model", "gpt-realtime-1.5"),
        ("", "gpt-realtime-1.5"),
    ],
)
def test_prices_for(model: str, expected: str) -> None:
    assert prices_for(model) is PRICE_TABLE[expected]


def test_cached_tokens_are_a_subset_of_input() -> None:
    p = Prices()
    usage = {"input_token_details": {"text_tokens": 100, "cached_tokens_details": {"text_tokens": 100}}}
    assert cost_usd(usage, p) == pytest.approx(100 * 0.40 / 1e6)
    # More cached than input is impossible; it is clamped instead of producing a negative uncached count.
    usage = {"input_token_details": {"text_tokens": 10, "cached_tokens_details": {"text_tokens": 50}}}
    assert cost_usd(usage, p) == pytest.approx(10 * 0.40 / 1e6)


def test_image_tokens_are_priced() -> None:
    usage = {"input_token_details": {"image_tokens": 1000, "cached_tokens_details": {"image_tokens": 400}}}
    assert cost_usd(usage, Prices()) == pytest.approx((600 * 5.00 + 400 * 0.50) / 1e6)


@pytest.mark.parametrize(
    "usage",
    [
        {},
        {"input_token_details": None, "output_token_details": None},
        {"input_token_details": {"text_tokens": None, "cached_tokens_details": None}},
        {"input_token_details": "odd", "output_token_details": ["odd"]},
        {"output_token_details": {"text_tokens": "12", "audio_tokens": True}},
        {"output_token_details": {"text_tokens": float("nan"), "audio_tokens": float("inf")}},
        {"output_token_details": {"text_tokens": -5}},
    ],
)
def test_odd_usage_counts_as_zero(usage: dict[str, Any]) -> None:
    assert cost_usd(usage, Prices()) == 0.0
    totals = UsageTotals()
    assert totals.add(usage, Prices()) == 0.0
    assert totals.responses == 1


def test_not_a_mapping_at_all_does_not_raise() -> None:
    assert cost_usd(None, Prices()) == 0.0  # type: ignore[arg-type]  # deliberately wrong input
    assert UsageTotals().add(None, Prices()) == 0.0  # type: ignore[arg-type]  # deliberately wrong input


def test_totals_accumulate_tokens_and_cost() -> None:
    totals = UsageTotals()
    first = totals.add(WORKED_EXAMPLE, Prices())
    cancelled = {
        "input_tokens": 1360,
        "output_tokens": 126,
        "input_token_details": {"text_tokens": 991, "audio_tokens": 369, "cached_tokens": 0},
        "output_token_details": {"text_tokens": 37, "audio_tokens": 89},
    }
    second = totals.add(cancelled, Prices())
    assert first == pytest.approx(0.0106136)
    assert second == pytest.approx((991 * 4 + 369 * 32 + 37 * 16 + 89 * 64) / 1e6)
    assert totals == UsageTotals(
        responses=2,
        input_tokens=132 + 1360,
        output_tokens=188 + 126,
        input_text=59 + 991,
        input_audio=73 + 369,
        cached=64,
        output_text=41 + 37,
        output_audio=147 + 89,
        cost_usd=totals.cost_usd,
    )
    assert totals.cost_usd == pytest.approx(first + second)


def test_protocol_model_dump_is_accepted() -> None:
    """The coach passes ``Usage.model_dump()`` from the protocol layer: same figures as the raw dict."""
    from voicecoach.protocol.server_events import Usage

    dumped = Usage.model_validate(WORKED_EXAMPLE).model_dump()
    assert cost_usd(dumped, Prices()) == pytest.approx(0.0106136)


COUNTS = st.one_of(st.none(), st.integers(min_value=0, max_value=10**7))


@given(
    st.fixed_dictionaries(
        {
            "input_token_details": st.fixed_dictionaries(
                {"text_tokens": COUNTS, "audio_tokens": COUNTS, "image_tokens": COUNTS},
                optional={
                    "cached_tokens_details": st.fixed_dictionaries(
                        {"text_tokens": COUNTS, "audio_tokens": COUNTS, "image_tokens": COUNTS}
                    )
                },
            ),
            "output_token_details": st.fixed_dictionaries({"text_tokens": COUNTS, "audio_tokens": COUNTS}),
        }
    )
)
def test_cost_is_bounded_by_all_uncached_and_all_cached(usage: dict[str, Any]) -> None:
    """Caching only ever lowers the bill, and never below the all-cached price."""
    p = Prices()
    cost = cost_usd(usage, p)
    no_cache = {**usage, "input_token_details": {**usage["input_token_details"], "cached_tokens_details": None}}
    inp = usage["input_token_details"]
    all_cached = {**usage, "input_token_details": {**inp, "cached_tokens_details": dict(inp)}}
    assert 0.0 <= cost_usd(all_cached, p) <= cost + 1e-12
    assert cost <= cost_usd(no_cache, p) + 1e-12
