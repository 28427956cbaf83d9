"""Honest hint text and cost, end to end over the local server (once per transport).

An interrupted hint is stored as what the output file holds, and a hint cut off by quitting is still priced.

How the test knows what the output WAV holds: the local server speaks with its deterministic synthetic voice
(``voice = "synth"``, :func:`voicecoach.server.voice.synth_speech`), which renders every word as one voiced
burst of 0.32 s followed by at least 80 ms of silence. So the words played are the voiced bursts in the WAV:
each whole burst is a word, and a last burst cut short counts for the part of 0.32 s it lasted. That count is
the server's own knowledge of its speech, independent of how the client estimated the played text.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e_harness import meeting, run_session

from voicecoach.audio.frames import Pcm, envelope
from voicecoach.coach.actions import Intent
from voicecoach.coach.state import State
from voicecoach.runner import Runner
from voicecoach.server.responses import Response
from voicecoach.server.usage import ASSISTANT_AUDIO_TOKENS_PER_S, text_tokens
from voicecoach.store import SessionStore
from voicecoach.transcript import items_of, render_show

# No punctuation: the synthetic voice pauses longer after it, which the burst count would not mind but the
# client's character-proportional estimate would (a word or so over a sentence).
HINT = (
    "Start with the pilot in two regions for four weeks then widen it in stages and tie each stage to a "
    "clear metric such as crash rate and retention and name who decides"
)
VOICED_S = 0.32  # voice.py: the voiced part of each word's WORD_SECONDS slot


def words_in(pcm: Pcm, rate: int) -> float:
    """Words the synthetic voice said in ``pcm``: voiced bursts, the last one by the part of a word it lasted."""
    env = envelope(pcm, rate, 10)
    voiced = env > 0.01
    bursts: list[int] = []  # lengths in 10 ms windows
    run = gap = 0
    for v in voiced:
        if v:
            if run and gap >= 3:  # 30 ms of quiet inside speech is a word boundary (gaps are >= 80 ms)
                bursts.append(run)
                run = 0
            run, gap = run + 1, 0
        else:
            gap += 1
    if run:
        bursts.append(run)
    if not bursts:
        return 0.0
    last = min(1.0, bursts[-1] * 0.01 / VOICED_S)
    return len(bursts) - 1 + last


async def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def _hint_id(runner: Runner, number: int) -> str | None:
    hints = [m.item_id for m in runner.coach.conversation.messages() if m.role == "coach"]
    return hints[number - 1] if len(hints) >= number else None


async def test_an_interrupted_hint_is_stored_as_what_the_output_file_holds(
    server_factory: Any, tmp_path: Path, transport: str
) -> None:
    server = await server_factory(responses=[HINT, "Short second hint."])

    async def ask_cut_ask(runner: Runner) -> None:
        await _until(lambda: runner.coach.state is State.LISTENING, 10.0, "the session")
        runner.intents.put_nowait(Intent.QUICK_HINT)
        await _until(lambda: _hint_id(runner, 1) is not None, 10.0, "the hint's response")
        rid = _hint_id(runner, 1)
        assert rid is not None
        await _until(lambda: runner.player.played_ms(rid) >= 2200, 15.0, "two seconds of the hint to play")
        runner.intents.put_nowait(Intent.INTERRUPT)
        await _until(lambda: not runner.coach.busy, 5.0, "the interrupt")
        await asyncio.sleep(0.6)  # whatever was still in flight must not reach the file
        runner.intents.put_nowait(Intent.QUICK_HINT)  # the next hint's window carries what was heard
        await _until(lambda: _hint_id(runner, 2) is not None, 10.0, "the second hint")

    rec = await run_session(server, tmp_path, meeting([]), during=ask_cut_ask, until=lambda r: True)

    assert rec.report.session_path is not None
    records = SessionStore().load(rec.report.session_path.stem)
    [hint, *_] = [r for r in items_of(records) if r["kind"] == "hint"]
    assert hint["interrupted"] is True
    generated, played = hint["generated_text"], hint["text"]
    assert generated.startswith(played) and len(played) < len(generated)
    assert hint["trim"] in ("timing", "proportional") and hint["played_ms"] > 2000
    # The words stored are the words the output file holds, within a word or two.
    heard = words_in(rec.output, rec.output_rate)
    assert 3 <= heard < len(HINT.split()) - 5  # cut mid-hint, as meant
    assert abs(len(played.split()) - heard) <= 2, (played, heard)
    # Every reading of the session says it the same way: the played words, then [interrupted].
    show = render_show("x", records)
    assert f"Coach (quick hint): {played} [interrupted]" in show
    assert f"Coach: {played} [interrupted]" in rec.report.transcript
    # The next hint's window carries what the person heard, marked as cut off, not the words never played.
    create = rec.sent("response.create")[1]["response"]
    window = create["input"][-1]["content"][0]["text"]
    assert f"Coach (interrupted): {played}" in window
    assert generated[len(played) :].strip() not in window


async def test_a_hint_cut_off_by_quitting_is_priced_from_what_was_generated(
    server_factory: Any, tmp_path: Path, transport: str
) -> None:
    # generation_speed 1: the response is still generating when the run quits, so no response.done comes.
    server = await server_factory(responses=[HINT], generation_speed=1.0)
    generating: list[Response] = []

    async def ask_then_quit(runner: Runner) -> None:
        await _until(lambda: runner.coach.state is State.LISTENING, 10.0, "the session")
        runner.intents.put_nowait(Intent.QUICK_HINT)
        await _until(lambda: _hint_id(runner, 1) is not None, 10.0, "the hint's response")
        rid = _hint_id(runner, 1)
        assert rid is not None
        await _until(lambda: runner.player.played_ms(rid) >= 1500, 15.0, "the hint to play")
        session = server.calls[0].session
        generating.extend(r for r in session.responses if r.id == rid)
        runner.intents.put_nowait(Intent.QUIT)

    rec = await run_session(server, tmp_path, meeting([]), during=ask_then_quit)

    assert "response.done" not in rec.types("received")
    [response] = generating
    cost = rec.runner.coach.cost.breakdown()
    assert cost.estimated_hints == 1
    assert rec.report.cost_usd > 0 and math.isclose(cost.total, rec.report.cost_usd)
    # What the server generated (and bills) by then, by its own rules: text / 4, 20 audio tokens a second.
    sent = "".join(
        e.get("delta", "")
        for e in server.calls[0].events_sent
        if e.get("type") == "response.output_audio_transcript.delta" and e.get("response_id") == response.id
    )
    out_text = text_tokens(sent)
    out_audio = round(response.samples_pushed / 48_000 * ASSISTANT_AUDIO_TOKENS_PER_S)
    prices = rec.runner.coach.prices
    server_usd = (
        response.usage.input_text * prices.text_in + out_text * prices.text_out + out_audio * prices.audio_out
    ) / 1e6
    assert server_usd > 0
    assert abs(cost.hints - server_usd) <= 0.25 * server_usd, (cost.hints, server_usd)
    # The hint itself is kept as what was played when the run quit.
    assert rec.report.session_path is not None
    [hint] = [r for r in items_of(SessionStore().load(rec.report.session_path.stem)) if r["kind"] == "hint"]
    assert hint["interrupted"] is True and hint["generated_text"].startswith(hint["text"])
    assert 0 < len(hint["text"].split()) <= len(sent.split())
