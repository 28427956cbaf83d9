"""Cost you can trust: hints cut off before their usage, cached tokens, the context's share, the summary's split."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from voicecoach.coach.actions import Intent, Send
from voicecoach.coach.coach import Coach
from voicecoach.coach.conversation import Message
from voicecoach.coach.cost import CostBreakdown, CostMeter
from voicecoach.coach.estimate import RequestSize, context_cost, request_size, text_tokens
from voicecoach.coach.played import MS_PER_CHAR
from voicecoach.coach.settings import CoachSettings
from voicecoach.coach.usage import Prices, cost_usd
from voicecoach.executor import RunReport
from voicecoach.protocol import client_events as ce
from voicecoach.protocol import server_events as se
from voicecoach.protocol.server_events import parse_server_dict
from voicecoach.summary import cost_line

P = Prices()
HINT = "Say the budget is on track and the pilot starts in May."


def ev(type_: str, **fields: Any) -> Any:
    return parse_server_dict({"type": type_, **fields})


def usage(text_in: int, cached_text: int, out_text: int, out_audio: int) -> dict[str, Any]:
    return {
        "input_tokens": text_in,
        "output_tokens": out_text + out_audio,
        "input_token_details": {
            "text_tokens": text_in,
            "audio_tokens": 0,
            "cached_tokens": cached_text,
            "cached_tokens_details": {"text_tokens": cached_text, "audio_tokens": 0},
        },
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }


class Driver:
    def __init__(self) -> None:
        self.coach = Coach(CoachSettings(cooldown_seconds=0))
        self.now = 10.0
        self.coach.connect(self.now)
        self.coach.handle(ev("session.updated", session={"type": "realtime"}), self.now)
        self.sent: list[ce.ResponseCreate] = []

    def at(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def ask(self, n: int) -> str:
        out = self.coach.command(Intent.QUICK_HINT, self.at(0.01))
        self.sent += [a.event for a in out if isinstance(a, Send) and isinstance(a.event, ce.ResponseCreate)]
        rid = f"resp_{n}"
        response = {"id": rid, "metadata": {"voicecoach_tier": "quick", "voicecoach_hint": str(n)}}
        self.coach.handle(ev("response.created", response=response), self.at(0.1))
        return rid

    def speak(self, rid: str, text: str) -> None:
        self.coach.handle(
            ev("response.output_audio_transcript.delta", response_id=rid, item_id="i", delta=text), self.at(0.05)
        )
        self.coach.playback(True, self.at(0.05))

    def done(self, rid: str, use: dict[str, Any], status: str = "completed") -> None:
        self.coach.handle(ev("response.done", response={"id": rid, "status": status, "usage": use}), self.at(0.01))


def test_a_hint_cut_off_by_quitting_is_priced_from_what_it_generated() -> None:
    d = Driver()
    rid = d.ask(1)
    d.speak(rid, HINT)
    assert d.coach.cost_usd > 0  # priced while it plays, before any usage
    d.coach.command(Intent.QUIT, d.at(1.0))
    cost = d.coach.cost.breakdown()
    assert cost.estimated_hints == 1
    # The local server's rules, which the estimate follows: input text / 4 per piece, output text / 4,
    # assistant audio 20 tokens a second (the text at the default speech rate: nothing calibrated it yet).
    [request] = d.sent
    assert request.response is not None
    pieces = [request.response.instructions or ""]
    pieces += [p.text for i in request.response.input or [] if not isinstance(i, ce.ItemReference) for p in i.content]
    generated = usage(
        sum(text_tokens(p) for p in pieces), 0, text_tokens(HINT), round(len(HINT) * MS_PER_CHAR / 1000 * 20)
    )
    assert cost.hints == pytest.approx(cost_usd(generated, P))
    assert d.coach.cost_usd == pytest.approx(cost.total) and cost.total == pytest.approx(cost.hints)


def test_usage_that_comes_after_the_cut_replaces_the_estimate() -> None:
    d = Driver()
    rid = d.ask(1)
    d.speak(rid, HINT)
    d.coach.command(Intent.INTERRUPT, d.at(0.5))
    estimate = d.coach.cost_usd
    actual = usage(300, 0, 10, 40)
    d.done(rid, actual, status="cancelled")
    assert d.coach.cost_usd == pytest.approx(cost_usd(actual, P))  # the estimate is gone, not added to
    assert d.coach.cost_usd != pytest.approx(estimate)
    assert d.coach.cost.breakdown().estimated_hints == 0 and not d.coach.cost.hints


def test_a_finished_hint_calibrates_the_speech_rate_of_the_next_estimate() -> None:
    d = Driver()
    rid = d.ask(1)
    d.speak(rid, HINT)
    d.done(rid, usage(200, 0, 15, 60))  # 60 audio tokens: 3 s for len(HINT) characters
    assert d.coach.cost.rate.ms_per_char == pytest.approx(3000 / len(HINT))


def test_cached_tokens_are_priced_at_the_cached_rate() -> None:
    full = cost_usd(usage(1000, 0, 0, 0), P)
    cached = cost_usd(usage(1000, 900, 0, 0), P)
    assert full == pytest.approx(1000 * 4.00 / 1e6)
    assert cached == pytest.approx((100 * 4.00 + 900 * 0.40) / 1e6)
    # A usage that only gives the cached total (no per-modality details) is not billed at the full rate.
    bare = usage(1000, 900, 0, 0)
    del bare["input_token_details"]["cached_tokens_details"]
    assert cost_usd(bare, P) == pytest.approx(cached)
    # ... and the cached count never exceeds the input it is a part of.
    bare["input_token_details"]["cached_tokens"] = 5000
    assert cost_usd(bare, P) == pytest.approx(1000 * 0.40 / 1e6)


CONTEXT = "# cv.md\n" + "Ten years of payments work. " * 40


def hint_event(context: str, window: str, instructions: str = "Answer briefly.") -> ce.ResponseCreate:
    inputs: list[ce.ResponseInput] = [ce.user_text(context)] if context else []
    inputs.append(ce.user_text(window))
    return ce.ResponseCreate(response=ce.ResponseParams(conversation="none", input=inputs, instructions=instructions))


def test_the_request_gives_the_context_share_of_the_input() -> None:
    size = request_size(hint_event(CONTEXT, "You: hello"), CONTEXT)
    assert size == RequestSize(text_tokens("Answer briefly."), text_tokens(CONTEXT), size.total)
    assert size.total == text_tokens("Answer briefly.") + text_tokens(CONTEXT) + text_tokens("You: hello")
    assert request_size(hint_event("", "You: hello"), "").context == 0


def test_the_context_is_priced_at_the_rate_charged_for_it() -> None:
    size = RequestSize(instructions=10, context=280, total=300)
    # First hint: nothing cached, the context at the full rate.
    assert context_cost(size, usage(300, 0, 0, 0), P) == pytest.approx(280 * 4.00 / 1e6)
    # Later: the cached prefix (instructions first, then the context) at the cached rate.
    assert context_cost(size, usage(300, 256, 0, 0), P) == pytest.approx((246 * 0.40 + 34 * 4.00) / 1e6)
    # The server counts tokens its own way: our estimate is scaled to its text-token count.
    assert context_cost(size, usage(600, 0, 0, 0), P) == pytest.approx(560 * 4.00 / 1e6)


def test_the_meter_splits_hints_context_and_each_channel_and_the_parts_add_up() -> None:
    meter = CostMeter()
    message = Message("resp_1", "coach", HINT, done=True)
    meter.asked(1, RequestSize(instructions=10, context=280, total=300))
    meter.opened(1, "resp_1", message, P)
    actual = usage(300, 256, 15, 60)
    meter.responses.add(actual, P)
    meter.settled(se.Response(id="resp_1", status="completed", usage=se.Usage.model_validate(actual)))
    meter.over("resp_1")
    meter.transcription["you"].add({"type": "duration", "seconds": 60}, None)
    meter.transcription["them"].add({"type": "duration", "seconds": 30}, None)
    cost = meter.breakdown()
    assert cost.hints == pytest.approx(cost_usd(actual, P))
    assert cost.context == pytest.approx((246 * 0.40 + 34 * 4.00) / 1e6)
    assert cost.you == pytest.approx(0.003) and cost.them == pytest.approx(0.0015)
    assert cost.total == pytest.approx(cost.hints + cost.you + cost.them) == pytest.approx(meter.total_usd)
    assert cost.estimated_hints == 0 and not meter.hints  # settled and over: nothing kept


def test_the_summary_line_names_every_part_and_they_add_up_as_printed() -> None:
    cost = CostBreakdown(hints=0.01004, context=0.00041, you=0.00156, them=0.00083)
    report = RunReport(cost_usd=cost.total, cost=cost)
    line = cost_line(report)
    assert line == (
        "estimated cost: $0.0124 (hints $0.0100, of which context $0.0004; transcription: you $0.0016, them $0.0008)"
    )
    total, hints, _context, you, them = (float(x) for x in re.findall(r"\$(\d+\.\d+)", line))
    assert math.isclose(hints + you + them, total)  # 0.01004 + 0.00156 + 0.00083 rounds to 0.0124, and so do the parts
    estimated = cost_line(RunReport(cost=CostBreakdown(hints=0.002, estimated_hints=1)))
    assert estimated.endswith("; 1 hint cut off before its usage came, priced from what was generated")
    assert cost_line(RunReport(cost_usd=0.5)) == "estimated cost: $0.5000"


def test_the_coach_prices_its_context_from_the_request_it_sent() -> None:
    coach = Coach(CoachSettings(cooldown_seconds=0), context_text=CONTEXT)
    coach.connect(1.0)
    coach.handle(ev("session.updated", session={"type": "realtime"}), 1.0)
    out = coach.command(Intent.QUICK_HINT, 2.0)
    [request] = [a.event for a in out if isinstance(a, Send) and isinstance(a.event, ce.ResponseCreate)]
    size = request_size(request, CONTEXT)
    assert size.context >= text_tokens(CONTEXT) and size.total > size.context > size.instructions > 0
    response = {"id": "resp_1", "metadata": {"voicecoach_tier": "quick", "voicecoach_hint": "1"}}
    coach.handle(ev("response.created", response=response), 2.1)
    actual = usage(size.total, size.instructions + size.context, 10, 40)  # the whole prefix served from cache
    coach.handle(ev("response.done", response={"id": "resp_1", "status": "completed", "usage": actual}), 2.5)
    cost = coach.cost.breakdown()
    assert cost.context == pytest.approx(size.context * 0.40 / 1e6)  # at the cached rate
    assert 0 < cost.context < cost.hints == pytest.approx(cost_usd(actual, P))
