"""Hint cost with a context: input tokens and price of a quick hint carrying a 3,000-token context, the first
hint of a session against the later ones (served by the prompt cache), after 5 and after 500 earlier messages.

The real runner in this process (:class:`~benchlib.live.LiveClient`, loopback WebRTC) against the local server
in a child process, which computes ``usage`` by its rules (server/usage.py: 4 characters a token; cached = the
longest prefix shared with any earlier response of the session, in whole 64-token blocks, the rule the real
recording shows). The earlier messages reach the coach as the server's transcription events over the call's
data channel; each size runs on a fresh call, so its first hint finds the cache cold. The lines repeat every
five (benchlib.cost.LINES), so the window of 3 holds the same text at 5 and at 500 messages: any growth is real.

Prices: the model's list prices (coach/usage.py), the input part alone (output does not depend on the
context). For comparison, what the text APIs' documented rule (1,024 tokens minimum, 128-token steps) would
report for the same prefix: one block less at most.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib.audio_env import file_sink
from benchlib.cost import LINES, _input_only
from benchlib.live import LiveClient
from benchlib.serverproc import ServerProcess
from voicecoach.coach.actions import Action, Intent
from voicecoach.coach.usage import cost_usd, prices_for
from voicecoach.protocol import server_events as se
from voicecoach.server.usage import DOCUMENTED_RULE, text_tokens

CONTEXT_TOKENS = 3000
_CV = (
    "Senior backend engineer, ten years in payments. At Acme I led the move of the ledger to event sourcing, "
    "which cut reconciliation incidents by half, and I mentored four engineers into the on-call rotation. "
)
# A 3,000-token context by the server's count, in the shape Context.text has: a header per file, then its text.
CONTEXT = ("## cv.md\n" + _CV * (4 * CONTEXT_TOKENS // len(_CV) + 1))[: 4 * CONTEXT_TOKENS]
HINT = "Say you led the ledger move and halved the incidents."
SIZES = (5, 500)


class UsageTap:
    """Every ``response.done`` usage the coach is given, in order (wraps ``coach.handle``; changes nothing)."""

    def __init__(self, handle: Callable[[se.ServerEvent, float], list[Action]]) -> None:
        self._handle = handle
        self.usages: list[dict[str, Any]] = []

    def has(self, n: int) -> Callable[[], bool]:
        """A condition for polling: ``n`` usages have come."""
        return lambda: len(self.usages) >= n

    def __call__(self, event: se.ServerEvent, now: float) -> list[Action]:
        if isinstance(event, se.ResponseDone) and event.response.usage is not None:
            self.usages.append(event.response.usage.model_dump())
        return self._handle(event, now)


def _completed(n: int) -> dict[str, Any]:
    return {
        "type": "conversation.item.input_audio_transcription.completed",
        "event_id": f"event_ctx_{n}",
        "item_id": f"item_ctx_{n}",
        "content_index": 0,
        "transcript": LINES[n % len(LINES)],
    }


def _figures(usage: dict[str, Any], prices: Any) -> dict[str, Any]:
    details = usage["input_token_details"]
    cached = int(details["cached_tokens"])
    # The recorded rule's cached count is the shared prefix in 64-token blocks; in 128-token blocks from 1,024
    # it is the same prefix by the documented rule (floor(floor(x/64)*64/128) = floor(x/128)).
    documented = DOCUMENTED_RULE.cached(cached)
    as_documented = {**usage, "input_token_details": {**details, "cached_tokens_details": {"text_tokens": documented}}}
    return {
        "input_tokens": usage["input_tokens"],
        "cached_tokens": cached,
        "input_usd": round(cost_usd(_input_only(usage), prices), 7),
        "input_usd_documented_rule": round(cost_usd(_input_only(as_documented), prices), 7),
        "hint_usd": round(cost_usd(usage, prices), 7),
    }


async def _session(server: ServerProcess, tmp: Path, earlier: int, later: int) -> tuple[str, list[dict[str, Any]]]:
    """One fresh call: ``earlier`` messages heard, then 1 + ``later`` quick hints; the model and their usages."""
    async with LiveClient(server.base_url, file_sink(tmp), "webrtc") as client:
        coach = client.runner.coach
        coach.reconfigure(coach.settings, context_text=CONTEXT)  # what Runner.apply_coach_settings does at start
        tap = UsageTap(coach.handle)
        coach.handle = tap  # type: ignore[method-assign]
        for n in range(earlier):
            await server.send_event(_completed(n))
        await client.wait(lambda: len(coach.conversation) >= earlier, 20, f"{earlier} messages")
        for k in range(1 + later):
            await client.wait(lambda: not coach.busy, 10, "the coach to be idle")
            client.intents.put_nowait(Intent.QUICK_HINT)
            await client.wait(tap.has(k + 1), 10, f"hint {k + 1}'s response.done")
            client.intents.put_nowait(Intent.INTERRUPT)  # it is priced: stop it, the next one starts idle
        return client.runner.settings.model, tap.usages


def run(tmp: Path, *, later: int = 3) -> dict[str, Any]:
    async def main() -> dict[str, tuple[str, list[dict[str, Any]]]]:
        async with ServerProcess(tmp, responses=[HINT], response_latency=0.05) as server:
            return {str(n): await _session(server, tmp, n, later) for n in SIZES}

    sessions = asyncio.run(main())
    model = sessions[str(SIZES[0])][0]
    prices = prices_for(model)
    out: dict[str, Any] = {"model": model, "context_tokens": text_tokens(CONTEXT), "later_hints": later, "messages": {}}
    for n, (_, usages) in sessions.items():
        first, rest = _figures(usages[0], prices), [_figures(u, prices) for u in usages[1:]]
        out["messages"][n] = {
            "first": first,
            "later": {key: statistics.median(f[key] for f in rest) for key in first},
            "later_over_first": round(statistics.median(f["input_usd"] for f in rest) / first["input_usd"], 4),
        }
    by_size = [out["messages"][str(n)] for n in SIZES]
    ratios = [
        max(a[kind]["input_usd"], b[kind]["input_usd"]) / min(a[kind]["input_usd"], b[kind]["input_usd"])
        for a, b in itertools.pairwise(by_size)
        for kind in ("first", "later")
    ]
    # 1.0 = flat: a hint costs the same however long the meeting has run (first and later hints alike).
    out["price_growth_ratio"] = round(max(ratios), 4)
    # The later hints' input price as a share of the first's (the worse size): the cache at work.
    out["later_over_first"] = max(m["later_over_first"] for m in by_size)
    return out
