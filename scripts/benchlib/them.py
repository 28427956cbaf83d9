"""The other side of the call ("them"): capture latency, ordering between the channels, and its cost.

- :func:`run_capture`: on the bench's virtual PulseAudio (``audio_env.virtual_device``), the real ``open_them``
  source (the default sink's monitor, as ``them_device = "auto"`` opens it). Two figures per frame, both ending
  when ``read`` returns it (where the them link queues the WebSocket append: one ``put_nowait``, not timed):
  from its first sample's capture (``frame_time``; this includes the 20 ms the frame takes to fill), and from its
  last sample's (the frame is complete and could go no sooner): the budget is judged on the second.
- :func:`run_ordering`: a pure-coach replay of a long scripted two-speaker dialogue. Each link's transcript
  arrives with its own random delay (VAD 0.2-0.5 s, transcription 0.3-2.5 s, a congested them link adding up to
  1 s), the events of both links merged in arrival order. The figure is the number of pairs of turns more than
  0.5 s apart whose transcript order differs from the spoken order.
- :func:`run_cost`: an hour of scripted "them" speech through the pure coach, each utterance's
  ``…transcription.completed`` carrying the usage the local server reports (``server.usage.transcription_usage``,
  the default transcriber's shape); the figure is the coach's own meter (``cost.split()["transcription_them"]``).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from benchlib.stats import summarize

PAUSES_S = (0.15, 0.3, 0.6, 1.0, 2.0)
WORDS_PER_S = 2.5
LINES = (
    "So tell me about a project you are proud of.",
    "Sure, the billing migration last spring.",
    "What was the hardest part of it?",
    "Moving the annual plans without any downtime.",
    "How did you test that?",
    "We replayed a week of traffic against the new system.",
    "Okay.",
    "Yes.",
)


# --- capture → hand-off -------------------------------------------------------------------------------------


async def _capture(frames: int) -> dict[str, Any]:
    from voicecoach.audio.loopback import open_them

    choice = open_them("auto")
    source = choice.source
    if source is None:
        return {"skipped": f"not measured: no them source on the virtual device ({choice.notice})"}
    from voicecoach.audio.frames import FRAME_MS

    lags: list[float] = []
    try:
        for i in range(frames + 25):
            await source.read()
            handed = time.monotonic()
            if i >= 25 and source.frame_time is not None:  # the first half second: the stream settling
                lags.append((handed - source.frame_time) * 1000)
    finally:
        await source.aclose()
    return {
        "source": source.description,
        "capture_to_handoff_ms": summarize(lags),  # from the frame's first sample
        "frame_complete_to_handoff_ms": summarize([lag - FRAME_MS for lag in lags]),  # from its last sample
    }


def run_capture(frames: int) -> dict[str, Any]:
    from benchlib.audio_env import virtual_device

    with virtual_device() as reason:
        if reason is not None:
            return {"skipped": f"not measured: {reason}"}
        return asyncio.run(_capture(frames))


# --- ordering between the channels ---------------------------------------------------------------------------


def _dialogue(turns: int, rng: random.Random) -> list[tuple[str, str, float, float]]:
    """(channel, text, start, end) on the spoken clock: speakers alternate mostly, sometimes one goes on."""
    out: list[tuple[str, str, float, float]] = []
    t, who = 1.0, "them"
    for k in range(turns):
        text = f"{LINES[k % len(LINES)]} ({k})"
        length = len(text.split()) / WORDS_PER_S
        out.append((who, text, t, t + length))
        t += length + rng.choice(PAUSES_S)
        if rng.random() < 0.8:
            who = "you" if who == "them" else "them"
    return out


def _events(
    k: int, channel: str, text: str, start: float, end: float, rng: random.Random, epoch: float
) -> list[tuple[float, str, dict[str, Any]]]:
    item = f"{channel}_{k:05d}"
    congested = rng.uniform(0, 1.0) if channel == "them" else 0.0
    vad = rng.uniform(0.2, 0.5) + congested
    done = end + rng.uniform(0.3, 2.5) + congested
    ms = (int((start - epoch) * 1000), int((end - epoch) * 1000))
    return [
        (start + vad, channel, {"type": "input_audio_buffer.speech_started", "item_id": item, "audio_start_ms": ms[0]}),
        (end + vad, channel, {"type": "input_audio_buffer.speech_stopped", "item_id": item, "audio_end_ms": ms[1]}),
        (done, channel, {"type": "conversation.item.input_audio_transcription.completed", "item_id": item,
                         "content_index": 0, "transcript": text}),
    ]  # fmt: skip


def run_ordering(turns: int, seed: int = 13) -> dict[str, Any]:
    from voicecoach.coach.coach import Coach
    from voicecoach.coach.settings import CoachSettings
    from voicecoach.protocol.server_events import parse_server_dict

    rng = random.Random(seed)
    spoken = _dialogue(turns, rng)
    epochs = {"you": 0.02, "them": 0.04}  # each link's first captured sample (a frame apart)
    events = sorted(
        (e for k, (c, text, s, end) in enumerate(spoken) for e in _events(k, c, text, s, end, rng, epochs[c])),
        key=lambda e: e[0],
    )
    coach = Coach(CoachSettings())
    for channel, epoch in epochs.items():
        coach.channel_started(channel, epoch)  # type: ignore[arg-type]
    for now, channel, event in events:
        parsed = parse_server_dict(event)
        coach.handle_them(parsed, now) if channel == "them" else coach.handle(parsed, now)
    order = [m.text for m in coach.conversation.messages() if m.role != "coach" and m.done]
    position = {text: i for i, text in enumerate(order)}
    starts = {text: s for _, text, s, _ in spoken}
    texts = [text for _, text, _, _ in spoken]
    far = near = 0
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            if a in position and b in position and position[a] > position[b]:
                if starts[b] - starts[a] > 0.5:
                    far += 1
                else:
                    near += 1
    return {
        "method": "pure coach replay, random per-link transcript delays (see BENCHMARKS.md)",
        "turns": turns,
        "turns_in_transcript": len(order),
        "inversions_over_0_5_s": far,
        "inversions_within_0_5_s": near,
    }


# --- cost per meeting hour -----------------------------------------------------------------------------------


def run_cost(hours: float = 1.0) -> dict[str, Any]:
    from voicecoach.audio.frames import WIRE_RATE
    from voicecoach.coach.coach import Coach
    from voicecoach.coach.cost import DEFAULT_TRANSCRIPTION_MODEL
    from voicecoach.coach.settings import CoachSettings
    from voicecoach.protocol.server_events import parse_server_dict
    from voicecoach.server.usage import transcription_usage

    coach = Coach(CoachSettings())
    coach.channel_started("them", 0.0)
    t, k, speech = 0.0, 0, 0.0
    while t < hours * 3600:
        text = LINES[k % len(LINES)]
        length = len(text.split()) / WORDS_PER_S
        item = f"them_{k:06d}"
        ms = (int(t * 1000), int((t + length) * 1000))
        usage = transcription_usage(int(length * WIRE_RATE), text)
        for event in (
            {"type": "input_audio_buffer.speech_started", "item_id": item, "audio_start_ms": ms[0]},
            {"type": "input_audio_buffer.speech_stopped", "item_id": item, "audio_end_ms": ms[1]},
            {"type": "conversation.item.input_audio_transcription.completed", "item_id": item,
             "content_index": 0, "transcript": text, "usage": usage},
        ):  # fmt: skip
            coach.handle_them(parse_server_dict(event), t + length + 0.5)
        speech += length
        t += length + 0.6  # a talkative other side: it speaks about 80 % of the hour
        k += 1
    them = coach.cost.split()["transcription_them"]
    return {
        "method": "an hour of scripted them speech through the pure coach, the local server's usage shape",
        "model": coach.cost.transcription["them"].model or DEFAULT_TRANSCRIPTION_MODEL,
        "utterances": k,
        "speech_minutes": round(speech / 60, 1),
        "them_usd_per_meeting_hour": round(them / hours, 4),
        "them_usd_per_speech_minute": round(them / (speech / 60), 5),
    }


# --- client CPU with both channels --------------------------------------------------------------------------


def run_cpu(tmp: Any, window: float, transport: str = "webrtc") -> dict[str, Any]:
    """``benchlib.cpu``'s window with ``--them-file`` (the same meeting WAV) on the them link as well."""
    from benchlib import cpu

    figures = asyncio.run(cpu._measure(tmp, window, transport, them=True))
    share = figures["client_cpu_s"] / figures["window_s"]
    return {
        "transport": transport,
        "window_s": round(figures["window_s"], 2),
        "client_cpu_percent_of_one_core": round(share * 100, 1),
        "server_cpu_percent_of_one_core": round(figures["server_cpu_s"] / figures["window_s"] * 100, 1),
        "utterances_heard": figures["utterances_heard"],
        "hints_spoken": figures["hints_spoken"],
    }
