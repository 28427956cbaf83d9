"""Trigger → ``response.create`` sent, and interrupt → silence, through the real runner over loopback.

Triggers run over WebRTC; interrupts over the transport asked for (WebRTC, or the WebSocket: the same rounds,
the same sinks, the same budget).

The client (:class:`~benchlib.live.LiveClient`) runs in this process; the server runs in a child process
and injects transcription deltas onto the call when a phrase is needed, exactly as its transcriber would.

Triggers: each starts from an idle coach and is cancelled (key interrupt) before it can speak, so every
sample measures the same path. Key: from putting the intent on the runner's queue. Phrase: from the delta's
arrival at the runner (the coach's ``now``), and from the server's send (over the wire, for information). The
runner's own ``hint.trigger_to_send_ms`` is kept alongside. The pure path times ``Coach.handle`` on the delta
that completes the phrase, and the same plus decoding, parsing and serializing (no I/O).

Interrupts: a quick hint is asked for; once it sounds and has played a while, the key or the phrase "got it"
interrupts it. Done = the last audible sample has left the player (from the sink's block log) and the
cancel/clear events have been handed to the transport (the data channel; on the WebSocket, its send queue,
which drops the WebRTC-only ``output_audio_buffer.clear``); figures run from the key press or the phrase's
arrival to then. The runner's ``hint.interrupt_to_silence_ms`` is reported too (see BENCHMARKS.md: it polls).
"""

from __future__ import annotations

import asyncio
import json
import time
from itertools import count
from pathlib import Path
from typing import Any

from benchlib.audio_env import alsa_messages, device_error, device_sink, file_sink, virtual_device
from benchlib.live import LiveClient, RecordingFileSink, RecordingPullSink
from benchlib.serverproc import ServerProcess
from benchlib.stats import summarize
from voicecoach.audio.files import FrameSink
from voicecoach.coach.actions import Intent, Send
from voicecoach.coach.coach import Coach
from voicecoach.coach.settings import CoachSettings
from voicecoach.protocol.server_events import decode_message, parse_server_dict

TRIGGER_METRIC = "hint.trigger_to_send_ms"
SILENCE_METRIC = "hint.interrupt_to_silence_ms"
TRIGGER_TEXT = "That is a good question. "
INTERRUPT_TEXT = "Got it, thanks. "
# A long hint: still generating (so response.cancel is due) and still sounding when it is interrupted.
LONG_HINT = (
    "Start with the numbers from last quarter, then compare the two options side by side, say which one you "
    "would pick and why, and close with the single risk that worries you most about the other one."
)
PLAY_BEFORE_INTERRUPT_S = 0.3
# After a flush the player discards incoming audio until 200 ms of silence has arrived (HOLD_SILENCE_MS);
# asking for the next hint sooner would only delay its first sound, so each round waits this long first.
SETTLE_S = 0.3
_ids = count()


def transcription_delta(text: str) -> dict[str, Any]:
    """A server event carrying ``text`` for a fresh user item (a new utterance)."""
    n = next(_ids)
    return {
        "type": "conversation.item.input_audio_transcription.delta",
        "event_id": f"event_bench_{n}",
        "item_id": f"item_bench_{n}",
        "content_index": 0,
        "delta": text,
    }


def server_config(**extra: Any) -> dict[str, Any]:
    # The model's simulated thinking time is not what these figures are about: keep rounds short.
    return {"responses": [LONG_HINT], "response_latency": 0.05, **extra}


# --- triggers ----------------------------------------------------------------------------------------------


async def triggers(server: ServerProcess, sink: FrameSink, n: int) -> dict[str, Any]:
    key: list[float] = []
    key_metric: list[float] = []
    phrase: list[float] = []
    phrase_wire: list[float] = []
    phrase_metric: list[float] = []
    async with LiveClient(server.base_url, sink, "webrtc") as client:
        view, coach = client.view, client.runner.coach
        for i in range(2 * n):
            by_phrase = i >= n
            await client.wait(lambda: not coach.busy, 10, "the coach to be idle")
            mark = len(view.seen)
            if by_phrase:
                sent_at = await server.send_event(transcription_delta(TRIGGER_TEXT))
            else:
                put_at = time.monotonic()
                client.intents.put_nowait(Intent.QUICK_HINT)
            await client.wait(view.has(mark, "metric", TRIGGER_METRIC), 5, "response.create")
            create = view.since(mark, "create")[0]
            metric = view.since(mark, "metric", TRIGGER_METRIC)[0].value
            if by_phrase:
                assert create.asked_at is not None
                phrase.append((create.at - create.asked_at) * 1000)
                phrase_wire.append((create.at - sent_at) * 1000)
                phrase_metric.append(metric)
            else:
                key.append((create.at - put_at) * 1000)
                key_metric.append(metric)
            client.intents.put_nowait(Intent.INTERRUPT)  # cancel it before it speaks: the next round starts idle
    return {
        "key_ms": summarize(key),
        "key_runner_metric_ms": summarize(key_metric),
        "phrase_ms": summarize(phrase),
        "phrase_runner_metric_ms": summarize(phrase_metric),
        "phrase_over_wire_ms": summarize(phrase_wire),
    }


def pure_triggers(n: int) -> dict[str, Any]:
    """The coach alone: deltas word by word, timing the one that completes the phrase (no I/O, no loop)."""
    coach = Coach(CoachSettings(cooldown_seconds=0.0))
    now = 0.0
    coach.connect(now)
    coach.handle(parse_server_dict({"type": "session.updated", "session": {}}), now)
    for i in range(20):  # some transcript, so the hint's window has text to render
        done = {"type": "conversation.item.input_audio_transcription.completed", "item_id": f"item_h{i}"}
        coach.handle(parse_server_dict({**done, "content_index": 0, "transcript": f"Point number {i} is fine."}), now)
    handle_ms: list[float] = []
    pipeline_ms: list[float] = []
    words = TRIGGER_TEXT.split(" ")
    for i in range(n):
        now += 5.0
        for k, word in enumerate(words):
            raw = json.dumps({**transcription_delta(word + " "), "item_id": f"item_p{i}"})
            start = time.perf_counter()
            event = parse_server_dict(decode_message(raw))
            parsed = time.perf_counter()
            actions = coach.handle(event, now)
            handled = time.perf_counter()
            wires = [json.dumps(a.event.to_wire(), separators=(",", ":")) for a in actions if isinstance(a, Send)]
            end = time.perf_counter()
            if wires:
                handle_ms.append((handled - parsed) * 1000)
                pipeline_ms.append((end - start) * 1000)
                break
            if k == len(words) - 1:
                raise RuntimeError("the trigger phrase did not fire")
        # Finish the hint the way the server would, so the next round starts idle.
        coach.command(Intent.INTERRUPT, now)
        created = {
            "type": "response.created",
            "response": {"id": f"resp_{i}", "metadata": {"voicecoach_tier": "quick"}},
        }
        coach.handle(parse_server_dict(created), now)
        assert not coach.busy
    return {"handle_ms": summarize(handle_ms, 4), "decode_handle_encode_ms": summarize(pipeline_ms, 4)}


# --- interrupts --------------------------------------------------------------------------------------------


async def interrupts(
    server: ServerProcess, sink: RecordingFileSink | RecordingPullSink, reps: int, transport: str
) -> dict[str, Any]:
    """``reps`` interrupts by key and ``reps`` by phrase, alternating; the sink's block log gives the silence."""
    results: dict[str, list[float]] = {
        "key_ms": [],
        "phrase_ms": [],
        "phrase_over_wire_ms": [],
        "flush_to_silent_ms": [],
        "cancel_sent_ms": [],
        "runner_metric_ms": [],
    }
    cancels = 0
    stuck: list[str] = []
    async with LiveClient(server.base_url, sink, transport) as client:
        view, coach, player = client.view, client.runner.coach, client.runner.player
        for rep in range(2 * reps):
            by_phrase = rep % 2 == 1
            await client.wait(lambda: not coach.busy and not player.is_playing, 10, "quiet")
            await asyncio.sleep(SETTLE_S)
            client.intents.put_nowait(Intent.QUICK_HINT)
            await client.wait(lambda: player.is_playing, 10, "the hint to sound")
            await asyncio.sleep(PLAY_BEFORE_INTERRUPT_S)
            mark = len(view.seen)
            if by_phrase:
                sent_at = await server.send_event(transcription_delta(INTERRUPT_TEXT))
            else:
                pressed = time.monotonic()
                client.intents.put_nowait(Intent.INTERRUPT)
            try:
                await client.wait(view.has(mark, "metric", SILENCE_METRIC), 5, "the player to fall silent")
            except TimeoutError:
                # Counted, not fatal: the sink's log still says when the sound really stopped (if it did).
                stuck.append(f"round {rep} ({'phrase' if by_phrase else 'key'}): {_state(client, mark)}")
                await client.wait(lambda: not player.is_playing, 30, "the player to fall silent at last")
            flushes = view.since(mark, "flush")
            if not flushes:
                raise RuntimeError(f"round {rep}: the interrupt flushed nothing ({_state(client, mark)})")
            flush = flushes[0]
            assert flush.asked_at is not None
            start = flush.asked_at if by_phrase else pressed
            sends = view.since(mark, "cancel") + view.since(mark, "clear")
            cancels += bool(view.since(mark, "cancel"))
            sent = max(s.at for s in sends)
            silent = sink.log.silent_at(start)
            done = max(silent, sent)
            results["phrase_ms" if by_phrase else "key_ms"].append((done - start) * 1000)
            if by_phrase:
                results["phrase_over_wire_ms"].append((done - sent_at) * 1000)
            results["flush_to_silent_ms"].append(max(0.0, silent - flush.at) * 1000)
            results["cancel_sent_ms"].append((sent - start) * 1000)
            results["runner_metric_ms"] += [m.value for m in view.since(mark, "metric", SILENCE_METRIC)[:1]]
    out: dict[str, Any] = {name: summarize(values) for name, values in results.items()}
    out["response_cancel_sent"] = f"{cancels}/{2 * reps}"
    # Rounds whose runner never reported silence within 5 s of the interrupt (their figures are in the summaries).
    out["rounds_not_silent_within_5_s"] = stuck
    out["player_underruns"] = client.runner.player.underruns
    out["block_ms"] = round(sink.log.block_ms(), 2)
    # How regularly the output was pulled: a device callback that comes late (a starved audio thread) shows here.
    out["pull_gap_ms"] = summarize(sink.log.gaps_ms())
    return out


def _state(client: LiveClient, mark: int) -> str:
    runner = client.runner
    seen = ", ".join(f"{s.kind}{':' + s.name if s.name else ''}" for s in client.view.seen[mark:][-8:])
    return f"playing={runner.player.is_playing} busy={runner.coach.busy}; seen since the interrupt: {seen}"


# --- entry points ------------------------------------------------------------------------------------------


def run_triggers(tmp: Path, *, n: int) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with ServerProcess(tmp, **server_config()) as server:
            return await triggers(server, file_sink(tmp), n)

    return {**asyncio.run(main()), "pure_coach": pure_triggers(n)}


def run_interrupts(tmp: Path, *, reps: int, transport: str = "webrtc") -> dict[str, Any]:
    """The file sink, then the device sink on virtual PulseAudio devices when they can run here."""

    async def main(device: bool) -> dict[str, Any]:
        async with ServerProcess(tmp, **server_config()) as server:
            sink: RecordingFileSink | RecordingPullSink = device_sink() if device else file_sink(tmp)
            figures = await interrupts(server, sink, reps, transport)
            if isinstance(sink, RecordingPullSink):
                figures["output_latency_ms"] = round(sink.output_latency * 1000, 1)
                figures["host_underflow_callbacks"] = sink.inner.status_flags
            return figures

    out: dict[str, Any] = {
        "transport": transport,
        "file": {"sink": "WAV file (24 kHz mono), clocked out in 10 ms blocks", **asyncio.run(main(False))},
    }
    with virtual_device() as unavailable:
        if unavailable is not None:
            out["device"] = {"skipped": unavailable}
        else:
            alsa: list[str] = []
            try:
                with alsa_messages(alsa):
                    figures = asyncio.run(main(True))
                underruns = sum("underrun" in line for line in alsa)
                out["device"] = {"sink": "sounddevice on PulseAudio null sink vspeaker", **figures}
                out["device"]["alsa_underrun_messages"] = underruns
            except Exception as exc:
                reason = device_error(exc)
                if reason is None:
                    raise
                out["device"] = {"skipped": reason}
    out["measured_on"] = "device" if "skipped" not in out["device"] else "file"
    return out
