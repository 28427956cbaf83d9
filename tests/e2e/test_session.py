"""The real client against the local Realtime server over real aiortc on 127.0.0.1.

Session setup, speech in → transcript, hints out → audio in the output file, interrupts, duration, keys.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from e2e_harness import meeting, run_session, utterances_heard

from voicecoach.coach.actions import Intent
from voicecoach.coach.state import State
from voicecoach.protocol.server_events import parse_server_dict
from voicecoach.runner import Runner
from voicecoach.store import SessionStore

LONG_GUIDANCE = (
    "Start with the pilot in two regions for four weeks, then widen it in stages. Tie each stage to a clear "
    "metric such as crash rate and retention, and name who decides to go on. Close with the fallback plan."
)


async def test_session_update_is_answered_and_speech_is_transcribed(server_factory: Any, tmp_path: Path) -> None:
    lines = ["Thanks for joining, everyone.", "The first milestone is onboarding."]
    server = await server_factory(utterances=lines)
    audio = meeting([(lines[0], 0.8), (lines[1], 0.8)])
    rec = await run_session(server, tmp_path, audio, until=utterances_heard(2))

    # session.update goes out once the channel is open, and is answered by session.updated.
    assert rec.types("sent")[0] == "session.update"
    received = rec.types("received")
    assert received[:2] == ["session.created", "session.updated"]
    update = rec.sent("session.update")[0]["session"]
    vad = update["audio"]["input"]["turn_detection"]
    assert (vad["type"], vad["create_response"], vad["interrupt_response"]) == ("server_vad", False, False)
    # Speech in the input reached the server, which segmented it and transcribed it.
    assert rec.report.transcript == [f"You: {lines[0]}", f"You: {lines[1]}"]
    for kind in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
    ):
        assert len(rec.received(kind)) == 2, kind
    # Listening is silent: nothing was asked of the model.
    assert rec.sent("response.create") == []
    assert rec.voiced_seconds() == 0.0


async def test_trigger_phrase_puts_hint_audio_in_the_output(
    server_factory: Any, tmp_path: Path, transport: str
) -> None:
    lines = ["We need the budget numbers.", "That is a good question."]
    hint = "Say the budget is on track."
    server = await server_factory(utterances=lines, responses=[hint])
    audio = meeting([(lines[0], 0.8), (lines[1], 4.0)])

    def hint_finished(runner: Runner) -> bool:
        return any(line.startswith("Coach:") for line in runner.report.transcript) and not runner.coach.busy

    rec = await run_session(server, tmp_path, audio, until=hint_finished)

    [create] = rec.sent("response.create")
    response = create["response"]
    assert response["conversation"] == "none" and response["metadata"]["voicecoach_tier"] == "quick"
    assert "We need the budget numbers." in response["input"][0]["content"][0]["text"]
    assert f"Coach: {hint}" in rec.report.transcript
    # The hint's audio came back (over RTP, or as output_audio.delta events) and was written to the output file.
    assert rec.voiced_seconds() > 0.5
    # It is in the crash-safe session file, with its tier.
    assert rec.report.session_path is not None
    records = SessionStore().load(rec.report.session_path.stem)
    assert any(r["kind"] == "hint" and r["tier"] == "quick" and r["text"] == hint for r in records)
    assert [r["text"] for r in records if r["kind"] == "utterance"] == lines
    # Latency figures were measured and written to the events file.
    metric_names = {e["event"]["name"] for e in rec.events if e["dir"] == "local"}
    expected = {"hint.trigger_to_send_ms", "hint.trigger_to_audible_ms", "response.cost_usd"}
    if transport == "webrtc":  # from the server's output_audio_buffer.started, which only WebRTC has
        expected.add("hint.trigger_to_server_audio_ms")
    assert expected <= metric_names


async def test_got_it_while_speaking_cancels_clears_and_silences(
    server_factory: Any, tmp_path: Path, transport: str
) -> None:
    lines = ["Now the rollout. Walk me through it.", "Got it, thanks."]
    # generation_speed 1: the response is still being generated while it plays, so a cancel is due.
    server = await server_factory(utterances=lines, responses=[LONG_GUIDANCE], generation_speed=1.0)
    audio = meeting([(lines[0], 3.0), (lines[1], 3.0)])
    rec = await run_session(server, tmp_path, audio, until=utterances_heard(2))

    sent = rec.types("sent")
    assert "response.create" in sent
    assert sent.index("response.create") < sent.index("response.cancel")
    if transport == "webrtc":  # the server's buffer is cleared too
        assert sent.index("response.cancel") < sent.index("output_audio_buffer.clear")
        assert rec.received("output_audio_buffer.cleared")
    else:  # the WebSocket has no server-side buffer: the local flush is all there is, and no clear goes out
        assert "output_audio_buffer.clear" not in sent
        assert not [e for e in rec.received("error") if "output_audio_buffer" in json.dumps(e)]
    [done] = [e for e in rec.received("response.done") if e["response"]["status"] == "cancelled"]
    assert done["response"]["status_details"]["reason"] == "client_cancelled"
    # The full guidance would be ~15 s of speech; the output holds only what played before "got it".
    assert 0.2 < rec.voiced_seconds() < 6.0
    assert any("[interrupted]" in line for line in rec.view_text.splitlines())


async def test_session_ends_cleanly_at_duration(server_factory: Any, tmp_path: Path) -> None:
    server = await server_factory()
    started = time.monotonic()
    rec = await run_session(server, tmp_path, np.zeros(48000 * 10, dtype=np.int16), duration=2.0)
    elapsed = time.monotonic() - started
    assert "--duration 2 s reached" in rec.report.reason
    assert 2.0 <= elapsed < 10.0
    assert rec.runner.coach.state is State.DISCONNECTED
    call = server.calls[0]
    assert await _wait(lambda: call.closed, 5.0)


async def test_quick_hint_input_tokens_do_not_grow_with_the_meeting(server_factory: Any, tmp_path: Path) -> None:
    server = await server_factory(responses=["Short hint."])

    async def input_tokens_after(earlier: int, run_dir: Path) -> int:
        async def feed_then_ask(runner: Runner) -> None:
            assert await _wait(lambda: runner.coach.state is State.LISTENING, 10.0)
            for n in range(earlier):
                item = f"item_fake_{n}"
                for event in (
                    {"type": "conversation.item.added", "item": {"id": item, "type": "message", "role": "user"}},
                    {
                        "type": "conversation.item.input_audio_transcription.completed",
                        "item_id": item,
                        "transcript": "we went over the quarterly budget again.",
                    },
                ):
                    runner.coach.handle(parse_server_dict(event), time.monotonic())
            runner.intents.put_nowait(Intent.QUICK_HINT)

        def answered(runner: Runner) -> bool:
            return any(m.name == "response.input_tokens" for m in runner.report.metrics)

        run_dir.mkdir()
        rec = await run_session(server, run_dir, meeting([]), during=feed_then_ask, until=answered)
        [tokens] = [m.value for m in rec.report.metrics if m.name == "response.input_tokens"]
        return int(tokens)

    after_5 = await input_tokens_after(5, tmp_path / "five")
    after_50 = await input_tokens_after(50, tmp_path / "fifty")
    assert after_5 > 0
    assert after_5 == after_50


async def _wait(condition: Any, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        return False
    return True


async def test_mute_sends_silence_keeps_the_session_and_unmute_is_immediate(
    server_factory: Any, tmp_path: Path
) -> None:
    """Muted, the server hears silence and the call stays up; after unmute, sound reaches it within 100 ms."""
    from voicecoach.audio.frames import WIRE_RATE, envelope

    server = await server_factory()
    tone = (np.sin(np.arange(48000 * 30) * 2 * np.pi * 300 / 48000) * 8000).astype(np.int16)  # 30 s of sound
    marks: dict[str, int] = {}

    async def mute_then_unmute(runner: Runner) -> None:
        assert await _wait(lambda: runner.coach.state is State.LISTENING, 10)
        call = await server.wait_for_call()
        assert await _wait(lambda: call.received_audio.size > WIRE_RATE // 2, 5)  # sound flows
        runner.intents.put_nowait(Intent.TOGGLE_MUTE)
        assert await _wait(lambda: runner.coach.state is State.MUTED, 5)
        marks["muted"] = call.received_audio.size
        await asyncio.sleep(1.2)  # the muted stretch under test: a duration, not a wait for something
        marks["unmuted"] = call.received_audio.size
        runner.intents.put_nowait(Intent.TOGGLE_MUTE)
        assert await _wait(lambda: call.received_audio.size > marks["unmuted"] + WIRE_RATE // 2, 5)
        assert not call.closed
        runner.stop("test over")

    await run_session(server, tmp_path, tone, during=mute_then_unmute)
    heard = server.calls[0].received_audio
    in_flight = WIRE_RATE // 5  # sound sent just before the mute still arrives for up to ~200 ms
    muted = envelope(heard[marks["muted"] + in_flight : marks["unmuted"]], WIRE_RATE)
    assert muted.size >= 40 and float(muted.max()) < 0.005  # ≥ 0.8 s of it arrived, all silence
    after = envelope(heard[marks["unmuted"] :], WIRE_RATE) > 0.05
    first_loud_ms = int(np.argmax(after)) * 20
    assert after.any() and first_loud_ms <= 100, first_loud_ms
