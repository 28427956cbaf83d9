"""A long meeting at high speed: every server event of two hours through the client's pure paths.

Runs in a fresh process (``python -m benchlib.meeting MINUTES TMP`` prints one JSON object), so that the
resident set it reports belongs to the meeting and not to earlier benchmarks.

Each event takes the path ``Runner`` gives a data-channel message, minus the channel
(``Runner.receive``): decode, parse, the runner's turn bookkeeping, the events file, ``Coach.handle``,
then the runner executes the actions. With no link, sends are
dropped; the transcript, metrics, the session file (fsynced per finished item) and the plain view (to
/dev/null) all run. The meeting: a turn every ~6 s (VAD, items, word-by-word transcription), a quick hint
by phrase every 20 turns, answered the way the server answers (response events, transcript deltas, usage,
output buffer), and every third hint cut off by "got it". Time is simulated: ``now`` jumps, nothing sleeps.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchlib.common import bench_settings, child_env, python
from benchlib.stats import rss_bytes, summarize

LINES = (
    "Thanks for joining, everyone. Let's look at the plan for the next quarter.",
    "The first milestone is the new onboarding flow for small teams.",
    "We also need to settle the pricing change before the summer starts.",
    "Marketing wants the launch date fixed by the end of the month.",
    "Support tickets went down by a fifth after the last release.",
    "I think the migration of annual plans is the bigger risk here.",
    "Can we get the churn numbers for the small teams by Friday?",
    "Let's write the action items down before we move on to hiring.",
)
TRIGGER = "That's a good question. "
INTERRUPT = "Got it, thanks."
HINT = "Start with the numbers from last quarter, then compare the two options and say which one you would pick."
WORDS_PER_S = 2.5
PAUSE_S = 1.0
HINT_EVERY = 20  # turns
INTERRUPT_EVERY = 3  # hints
HINT_AUDIO_S = 6.0
WARMUP_S = 60.0
WINDOW_S = 600.0


def _usage(text: str) -> dict[str, Any]:
    return {"total_tokens": 300, "input_tokens": 180, "output_tokens": 120,
            "input_token_details": {"text_tokens": 180, "audio_tokens": 0, "cached_tokens": 128},
            "output_token_details": {"text_tokens": len(text) // 4, "audio_tokens": 120 - len(text) // 4}}  # fmt: skip


def user_turn(k: int, text: str, t: float, previous: str | None) -> Iterator[tuple[float, dict[str, Any]]]:
    """The server events of one user utterance starting at ``t`` (VAD, items, transcription)."""
    item = f"item_{k:06d}"
    words = text.split(" ")
    end = t + len(words) / WORDS_PER_S
    yield t, {"type": "input_audio_buffer.speech_started", "item_id": item, "audio_start_ms": int(t * 1000)}
    yield end, {"type": "input_audio_buffer.speech_stopped", "item_id": item, "audio_end_ms": int(end * 1000)}
    yield end, {"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": previous}
    wire = {"id": item, "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}]}  # fmt: skip
    yield end, {"type": "conversation.item.added", "previous_item_id": previous, "item": wire}
    yield end, {"type": "conversation.item.done", "previous_item_id": previous, "item": wire}
    for i, word in enumerate(words):
        delta = word if i == 0 else " " + word
        yield end + 0.15 + 0.02 * i, {"type": "conversation.item.input_audio_transcription.delta",
                                      "item_id": item, "content_index": 0, "delta": delta}  # fmt: skip
    yield end + 0.15 + 0.02 * len(words), {"type": "conversation.item.input_audio_transcription.completed",
                                           "item_id": item, "content_index": 0, "transcript": text}  # fmt: skip


def hint_reply(n: int, metadata: dict[str, str], t: float) -> Iterator[tuple[float, dict[str, Any]]]:
    """What the server sends for hint request ``n``: created, audio started, transcript, done (generation 4x)."""
    rid, item = f"resp_{n:05d}", f"item_r{n:05d}"
    response: dict[str, Any] = {"id": rid, "object": "realtime.response", "status": "in_progress", "metadata": metadata,
                "conversation_id": None, "output": []}  # fmt: skip
    yield t, {"type": "response.created", "response": response}
    yield t + 0.05, {"type": "output_audio_buffer.started", "response_id": rid}
    words = HINT.split(" ")
    step = HINT_AUDIO_S / 4 / len(words)
    for i, word in enumerate(words):
        yield t + 0.05 + step * i, {"type": "response.output_audio_transcript.delta", "response_id": rid,
                                    "item_id": item, "output_index": 0, "content_index": 0,
                                    "delta": word if i == 0 else " " + word}  # fmt: skip
    end = t + 0.05 + HINT_AUDIO_S / 4
    yield end, {"type": "response.output_audio_transcript.done", "response_id": rid, "item_id": item,
                "output_index": 0, "content_index": 0, "transcript": HINT}  # fmt: skip
    done = {**response, "status": "completed", "usage": _usage(HINT)}
    yield end, {"type": "response.done", "response": done}
    limits = [{"name": "tokens", "limit": 40000, "remaining": 39700, "reset_seconds": 0.45}]
    yield end, {"type": "rate_limits.updated", "rate_limits": limits}


def simulate(minutes: float, tmp: Path) -> dict[str, Any]:
    from voicecoach.audio.files import NullSink, PcmSource
    from voicecoach.audio.frames import WIRE_RATE, silence
    from voicecoach.coach.actions import Action, Send
    from voicecoach.coach.timing import PLAYBACK_HANGOVER_S
    from voicecoach.protocol import client_events as ce
    from voicecoach.runner import Runner
    from voicecoach.store import SessionStore
    from voicecoach.ui.plain import PlainView

    # Never contacted: nothing here connects.
    settings = bench_settings("http://127.0.0.1:9/v1", events_file=tmp / "meeting-events.jsonl")
    devnull = open(os.devnull, "w")  # lives as long as the view; closed at the end
    store = SessionStore(tmp / "sessions")
    runner = Runner(settings, PlainView(devnull), PcmSource(silence(960), WIRE_RATE), NullSink(), store=store)
    execute = runner.execute
    coach = runner.coach
    costs: list[tuple[float, float]] = []  # (meeting time, seconds of CPU-bound work for one event)
    fired: list[tuple[float, float]] = []
    requests: list[ce.ResponseCreate] = []

    def feed(now: float, data: dict[str, Any]) -> None:
        raw = json.dumps({"event_id": f"event_{len(costs)}", **data})
        start = time.perf_counter()
        actions: list[Action] = runner.receive(raw, now)
        spent = time.perf_counter() - start
        costs.append((now, spent))
        new = [a.event for a in actions if isinstance(a, Send) and isinstance(a.event, ce.ResponseCreate)]
        if new:
            fired.append((now, spent))
            requests.extend(new)

    execute(coach.connect(0.0))
    feed(0.0, {"type": "session.created", "session": {}})
    feed(0.0, {"type": "session.updated", "session": {}})
    t, k, hints, previous = 0.5, 0, 0, None
    rss_start: int | None = None
    wall = time.perf_counter()
    while t < minutes * 60:
        if rss_start is None and t >= WARMUP_S:
            gc.collect()
            rss_start = rss_bytes()[0]
        trigger = k % HINT_EVERY == HINT_EVERY - 1
        text = (TRIGGER if trigger else "") + LINES[k % len(LINES)]
        last = t
        for when, event in user_turn(k, text, t, previous):
            feed(when, event)
            last = when
        previous, k = f"item_{k:06d}", k + 1
        t = last + PAUSE_S
        if requests:
            request, hints = requests.pop(), hints + 1
            metadata = dict((request.response.metadata if request.response else None) or {})
            for when, event in hint_reply(hints, metadata, last + 0.12):
                feed(when, event)
            started = last + 0.17
            execute(coach.playback(True, started))  # what the player reports: sound started
            if hints % INTERRUPT_EVERY == 0:
                for when, event in user_turn(k, INTERRUPT, started + 1.5, previous):
                    feed(when, event)
                    last = when
                previous, k = f"item_{k:06d}", k + 1
                feed(last + 0.05, {"type": "output_audio_buffer.cleared", "response_id": f"resp_{hints:05d}"})
            else:
                last = started + HINT_AUDIO_S
                feed(last, {"type": "output_audio_buffer.stopped", "response_id": f"resp_{hints:05d}"})
            execute(coach.playback(False, last))  # the player's raw edge; the coach applies the hang-over
            execute(coach.tick(last + PLAYBACK_HANGOVER_S))
            t = last + PAUSE_S
    wall = time.perf_counter() - wall
    gc.collect()
    rss_end, rss_peak = rss_bytes()
    runner.journal.close_sync()  # (the runner's events file is closed when this process exits)
    devnull.close()
    end = t
    window = min(WINDOW_S, (end - WARMUP_S) / 2)
    first = [c * 1e6 for when, c in costs if WARMUP_S <= when < WARMUP_S + window]
    last_ = [c * 1e6 for when, c in costs if when >= end - window]
    start_rss = rss_start if rss_start is not None else rss_end
    return {
        "meeting_minutes": round(end / 60, 1),
        "events": len(costs),
        "utterances": k,
        "hints": hints,
        "simulation_wall_s": round(wall, 2),
        "rss_start_mb": round(start_rss / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1),
        "rss_growth_mb": round((rss_end - start_rss) / 2**20, 2),
        "rss_peak_mb": round(rss_peak / 2**20, 1),
        "event_us_start": summarize(first, 1),
        "event_us_end": summarize(last_, 1),
        "trigger_event_us_start": summarize([c * 1e6 for _, c in fired[:5]], 1),
        "trigger_event_us_end": summarize([c * 1e6 for _, c in fired[-5:]], 1),
        "transcript_messages_kept": len(coach.conversation),
        "window_minutes": round(window / 60, 1),
    }


def run(tmp: Path, *, minutes: float) -> dict[str, Any]:
    import subprocess

    done = subprocess.run(
        [python(), "-m", "benchlib.meeting", f"{minutes:g}", str(tmp)],
        capture_output=True,
        text=True,
        env=child_env(tmp),
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the meeting simulation failed ({done.returncode}): {done.stderr[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    print(json.dumps(simulate(float(sys.argv[1]), Path(sys.argv[2]))), flush=True)
