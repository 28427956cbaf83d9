"""A real session against the real local server: hints with a 3,000-token context are reported cached from the
second one on (whole 64-token blocks of the instructions and the context), and the run's cost prices them so."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.e2e_harness import meeting, run_session

from voicecoach.coach.actions import Intent
from voicecoach.coach.hints import CONTEXT_PREFACE
from voicecoach.coach.state import State
from voicecoach.coach.usage import cost_usd, prices_for
from voicecoach.protocol.server_events import parse_server_dict
from voicecoach.runner import Runner
from voicecoach.server.usage import CACHE_BLOCK, text_tokens

LINE = "The role owns the billing platform: invoices, refunds, dunning and its audits. "
CONTEXT = ("## job.md\n" + LINE * 200)[:12_000]
HINTS = 3


async def _until(condition: Any, seconds: float, what: str) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


async def test_hints_with_a_context_are_cached_from_the_second_and_cost_less(
    server_factory: Any, tmp_path: Path, over_transport: str
) -> None:
    assert text_tokens(CONTEXT) == 3000
    server = await server_factory(responses=["Say you led the refunds rewrite."] * HINTS)

    def costs(runner: Runner) -> list[float]:
        return [m.value for m in runner.report.metrics if m.name == "response.cost_usd"]

    async def hints(runner: Runner) -> None:
        await _until(lambda: runner.coach.state is State.LISTENING, 10.0, "the session to be live")
        runner.coach.reconfigure(runner.coach.settings, context_text=CONTEXT)  # what Runner.apply_coach_settings does
        for n in range(HINTS):
            item = f"item_fake_{n}"
            for event in (
                {"type": "conversation.item.added", "item": {"id": item, "type": "message", "role": "user"}},
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item,
                    "transcript": f"Question {n}: why do you want to own billing?",
                },
            ):
                runner.coach.handle(parse_server_dict(event), time.monotonic())
            runner.intents.put_nowait(Intent.QUICK_HINT)
            await _until(lambda: len(costs(runner)) > n, 10.0, f"hint {n + 1} to be priced")  # noqa: B023

    rec = await run_session(server, tmp_path, meeting([]), during=hints, until=lambda r: len(costs(r)) >= HINTS)
    assert rec.report.transport == over_transport
    requests = rec.sent("response.create")
    assert len(requests) == HINTS
    assert all(r["response"]["input"][0]["content"][0]["text"].startswith(CONTEXT_PREFACE) for r in requests)
    usages = [e["response"]["usage"] for e in rec.received("response.done")]
    assert len(usages) == HINTS
    cached = [u["input_token_details"]["cached_tokens"] for u in usages]
    assert cached[0] == 0
    context_blocks = text_tokens(CONTEXT) // CACHE_BLOCK * CACHE_BLOCK
    assert all(c >= context_blocks for c in cached[1:]), cached
    # The run's figures are the prices of exactly these usages, cached tokens at the cached rate.
    prices = prices_for(rec.runner.settings.model)
    assert costs(rec.runner) == pytest.approx([cost_usd(u, prices) for u in usages], rel=1e-9)
    assert rec.runner.coach.usage.cached == sum(cached)
    assert costs(rec.runner)[1] < costs(rec.runner)[0] * 0.5
