"""The local server's prompt cache: the longest prefix shared with any earlier response of the session, in whole
64-token blocks (server/usage.py), and what the coach's hints with a context get from it, priced by the coach."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from tests.server.helpers import Harness

from voicecoach.coach.actions import Intent, Send
from voicecoach.coach.coach import Coach
from voicecoach.coach.settings import CoachSettings
from voicecoach.coach.usage import prices_for
from voicecoach.protocol import client_events as ce
from voicecoach.protocol.server_events import parse_server_dict
from voicecoach.server.usage import (
    CACHE_BLOCK,
    CACHE_PROMPTS,
    DOCUMENTED_RULE,
    RECORDED_RULE,
    PromptCache,
    Segment,
    Usage,
    cached_tokens,
    text_tokens,
)

MANUAL = {
    "type": "session.update",
    "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
}
LINE = "Led the payments team through the move to event sourcing; cut incidents by half. "
CONTEXT = ("## cv.md\n" + LINE * 200)[:12_000]
assert text_tokens(CONTEXT) == 3000  # a 3,000-token context by the server's own count (4 characters each)


def seg(key: str, text: int = 0, audio: int = 0) -> Segment:
    return Segment(key, text, audio)


def test_the_rule_follows_the_recording_and_keeps_the_documented_one_for_comparison() -> None:
    # realtime-protocol.md §4.3: a real GA response.done with 132 input tokens, 64 of them cached (a shared
    # prefix of 64 to 127 tokens): far below the documented 1,024-token minimum.
    assert RECORDED_RULE.cached(73) == RECORDED_RULE.cached(127) == 64 and RECORDED_RULE.cached(63) == 0
    assert RECORDED_RULE.cached(3070) == 3008
    assert DOCUMENTED_RULE.cached(127) == 0 and DOCUMENTED_RULE.cached(1023) == 0
    assert DOCUMENTED_RULE.cached(1024) == 1024 and DOCUMENTED_RULE.cached(3070) == 2944


def test_the_match_is_any_earlier_prompt_not_only_the_last() -> None:
    cache = PromptCache()
    quick = [seg("quick instructions", 40), seg("context", 3000), seg("window 1", 60)]
    full = [seg("full instructions", 45), seg("context", 3000), seg("window 1", 90)]
    cache.remember(quick)
    cache.remember(full)  # another tier in between: shares nothing from the start
    later = [seg("quick instructions", 40), seg("context", 3000), seg("window 2", 60)]
    assert cache.match(later) == tuple(quick)
    assert cached_tokens(cache.match(later), later) == (3008, 0)  # 3,040 shared → 47 blocks of 64


def test_memory_is_bounded_and_a_prompt_that_is_extended_is_replaced() -> None:
    cache = PromptCache()
    first = [seg("old", 500)]
    cache.remember(first)
    for n in range(CACHE_PROMPTS):
        cache.remember([seg(f"other {n}", 100)])
    assert len(cache) == CACHE_PROMPTS and cache.match(first) == ()  # the oldest fell out
    growing = PromptCache()
    items: list[Segment] = []
    for n in range(200):  # an in-band conversation: each response's input extends the last one's
        items.append(seg(f"item {n}", 10, 40))
        growing.remember(items)
    assert len(growing) == 1 and growing.match(items) == tuple(items)


segments = st.lists(
    st.builds(seg, st.sampled_from("abcd"), st.integers(0, 300), st.integers(0, 300)), min_size=0, max_size=6
)


@given(st.lists(segments, min_size=1, max_size=8), segments)
def test_cached_is_a_whole_block_subset_of_input(history: list[list[Segment]], current: list[Segment]) -> None:
    cache = PromptCache()
    for prompt in history:
        cache.remember(prompt)
    usage = Usage.for_input(current, cache.match(current))
    assert 0 <= usage.cached_text <= usage.input_text and 0 <= usage.cached_audio <= usage.input_audio
    assert (usage.cached_text + usage.cached_audio) % CACHE_BLOCK == 0
    best = max((cached_tokens(p, current) for p in history), key=sum)
    assert usage.cached_text + usage.cached_audio == sum(best)  # no earlier prompt would have given more


# --- the coach's hints against the session core ------------------------------------------------------------


class Meeting:
    """A coach and the server's session core joined by their wire forms (no transport)."""

    def __init__(self, context_text: str) -> None:
        self.server = Harness()
        self.server.send(MANUAL)
        self.coach = Coach(CoachSettings(cooldown_seconds=0), context_text=context_text)
        self.t = 0.0
        self.coach.connect(self.t)
        self.tell({"type": "session.updated", "session": {}})

    def tell(self, event: dict[str, Any]) -> None:
        self.t += 0.1
        self.coach.handle(parse_server_dict(event), self.t)

    def say(self, n: int) -> None:
        item = f"item_line_{n}"
        self.tell({"type": "conversation.item.added", "item": {"id": item, "type": "message", "role": "user"}})
        done = {"type": "conversation.item.input_audio_transcription.completed", "item_id": item}
        self.tell({**done, "transcript": f"Point {n}: the budget moved again."})

    def hint(self, intent: Intent = Intent.QUICK_HINT) -> dict[str, Any]:
        """Ask, pass the request to the server, pass its response back; the usage of response.done."""
        self.t += 0.1
        [request] = [
            a.event
            for a in self.coach.command(intent, self.t)
            if isinstance(a, Send) and isinstance(a.event, ce.ResponseCreate)
        ]
        start = len(self.server.events)
        self.server.send(request.to_wire())
        done = self.server.wait_for("response.done", after=start)
        for event in self.server.events[start:]:
            if event["type"] in ("response.created", "response.done"):
                self.tell(event)
        self.coach.command(Intent.INTERRUPT, self.t)  # over: the next hint starts idle
        usage: dict[str, Any] = done["response"]["usage"]
        return usage


def test_hints_with_a_3000_token_context_are_cached_from_the_second_on_and_priced_so() -> None:
    meeting = Meeting(CONTEXT)
    context_blocks = text_tokens(CONTEXT) // CACHE_BLOCK * CACHE_BLOCK
    usages, costs = [], []
    for n in range(4):
        meeting.say(n)
        before = meeting.coach.usage.cost_usd
        usages.append(meeting.hint(Intent.FULL_GUIDANCE if n == 2 else Intent.QUICK_HINT))
        costs.append(meeting.coach.usage.cost_usd - before)
    cached = [u["input_token_details"]["cached_tokens"] for u in usages]
    assert cached[0] == 0  # the first hint of the session: nothing to reuse
    assert cached[1] >= context_blocks and cached[3] >= context_blocks  # after a full hint in between, too
    assert all(c <= u["input_tokens"] for c, u in zip(cached, usages, strict=True))
    # The coach prices the cached part at the cached rate: $0.40 instead of $4.00 per 1M text tokens.
    p = prices_for("gpt-realtime-1.5")
    for usage, cost in zip(usages, costs, strict=True):
        details, out = usage["input_token_details"], usage["output_token_details"]
        hit = details["cached_tokens_details"]["text_tokens"]
        expected = (details["text_tokens"] - hit) * p.text_in + hit * p.text_cached
        expected += out["text_tokens"] * p.text_out + out["audio_tokens"] * p.audio_out
        assert abs(cost - expected / 1e6) < 1e-12
    assert costs[1] < costs[0] * 0.5  # same output, a tenth of the price for the context
