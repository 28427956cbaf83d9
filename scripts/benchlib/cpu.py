"""CPU of the client process over a window of full-duplex audio, over WebRTC and over the WebSocket.

The client is the real program, ``python -m voicecoach run --plain``, reading a WAV of meeting speech as its
microphone and writing the coach's voice to a WAV file; the server is another process. The scenario makes
every other utterance a trigger, so the coach speaks a good part of the time: Opus runs both ways all along
(the server's track sends silence frames between hints, as a real peer does). CPU is user + system time of
the client's whole process (every thread) from /proc, over a window that starts once ``[listening]`` is
printed, so start-up (imports, connect) is left out and reported apart.

Both transports are measured in the same run, so that the WebSocket is judged against WebRTC on the same
machine under the same load. The window is split into rounds in the order WebRTC, WebSocket, WebSocket,
WebRTC (ABBA), each with a fresh server and client, so that load that drifts during the run weighs on both
alike; each transport's figure is its CPU seconds over its window seconds, summed over its rounds.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchlib.common import LOOPBACK, child_env, python, speech, speech_kind
from benchlib.serverproc import ServerProcess
from benchlib.stats import proc_cpu_seconds
from voicecoach.audio.files import read_wav, wav_header
from voicecoach.audio.frames import WIRE_RATE, envelope, silence
from voicecoach.cli import SIGNAL_EXIT

LINES = (
    "Thanks for joining, everyone. Let's look at the plan for the next quarter.",
    "That's a good question. How do we scale the support team with it?",
    "The first milestone is the new onboarding flow for small teams.",
    "That's a good question, and I am not sure we have the numbers yet.",
    "Marketing wants the launch date fixed by the end of the month.",
    "Good question. What does the pricing change do to annual plans?",
)
HINT = "Start with the numbers from last quarter, then compare the two options and say which one you would pick."
PAUSE_S = 1.2
START_TIMEOUT_S = 30.0


def _meeting_wav(path: Path, seconds: float) -> int:
    """Write a WAV of the lines spoken in turn, repeated to last ``seconds``; returns how many lines it holds."""
    voiced = [speech(line) for line in LINES]
    gap = silence(int(PAUSE_S * WIRE_RATE))
    parts, total, spoken = [silence(WIRE_RATE // 2)], 0.5, 0
    while total < seconds:
        pcm = voiced[spoken % len(voiced)]
        parts += [pcm, gap]
        total += pcm.size / WIRE_RATE + PAUSE_S
        spoken += 1
    pcm = np.concatenate(parts)
    path.write_bytes(wav_header(WIRE_RATE, 1, pcm.size * 2) + pcm.astype("<i2").tobytes())
    return spoken


async def _measure(tmp: Path, window: float, transport: str, *, them: bool = False) -> dict[str, Any]:
    """``them``: the other side too, from ``--them-file`` (the same meeting WAV), on its own link."""
    mic = tmp / "cpu-meeting.wav"
    spoken = _meeting_wav(mic, window + 10)
    # Transcripts are scripted; VAD may split a line in two, so the script runs on past the audio.
    utterances = [LINES[i % len(LINES)] for i in range(2 * spoken + 10)]
    extra: dict[str, Any] = {"them_utterances": utterances} if them else {}
    async with ServerProcess(tmp, utterances=utterances, responses=[HINT], **extra) as server:
        command = [python(), "-m", "voicecoach", "run", "--plain", "--transport", transport]
        command += ["--base-url", server.base_url]
        command += ["--input-file", str(mic), "--output-file", str(tmp / "cpu-out.wav"), "--ice-host", LOOPBACK]
        command += ["--them-file", str(mic)] if them else []
        command += ["--duration", f"{window + 30:g}"]  # a backstop: the window is ended by SIGTERM
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env(tmp),
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
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await listening.wait()
            ready = time.monotonic()
            startup_cpu = proc_cpu_seconds(proc.pid)
            client0, server0, t0 = startup_cpu, proc_cpu_seconds(server.pid), time.monotonic()
            await asyncio.sleep(window)  # the measurement window itself: the client runs on its own meanwhile
            client1, server1, t1 = proc_cpu_seconds(proc.pid), proc_cpu_seconds(server.pid), time.monotonic()
            proc.send_signal(signal.SIGTERM)  # what a service manager does: a clean stop, exit 130 (README)
            async with asyncio.timeout(15):
                await proc.wait()
                await asyncio.gather(*readers)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    if proc.returncode != SIGNAL_EXIT:
        raise RuntimeError(f"the client exited with {proc.returncode}: {b''.join(errors).decode()[-800:]}")
    return {
        "window_s": t1 - t0,
        "client_cpu_s": client1 - client0,
        "server_cpu_s": server1 - server0,
        "client_startup_cpu_s": startup_cpu,
        "client_startup_wall_s": ready - started,
        "utterances_heard": sum(1 for line in lines if line.startswith("You:")),
        "hints_spoken": sum(1 for line in lines if line.startswith("Coach (")),
        "coach_voiced_s": _voiced_seconds(tmp / "cpu-out.wav"),
    }


def _combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One transport's rounds as one window: shares over the summed window, counts summed, start-up averaged."""
    elapsed = sum(r["window_s"] for r in rounds)
    share = sum(r["client_cpu_s"] for r in rounds) / elapsed
    return {
        "window_s": round(elapsed, 2),
        "rounds": len(rounds),
        "client_cpu_percent_of_one_core": round(share * 100, 1),
        "client_cpu_percent_by_round": [round(r["client_cpu_s"] / r["window_s"] * 100, 1) for r in rounds],
        "client_cpu_s_per_audio_minute": round(share * 60, 2),
        "server_cpu_percent_of_one_core": round(sum(r["server_cpu_s"] for r in rounds) / elapsed * 100, 1),
        "client_startup_cpu_s": round(sum(r["client_startup_cpu_s"] for r in rounds) / len(rounds), 2),
        "client_startup_wall_s": round(sum(r["client_startup_wall_s"] for r in rounds) / len(rounds), 2),
        "utterances_heard": sum(r["utterances_heard"] for r in rounds),
        "hints_spoken": sum(r["hints_spoken"] for r in rounds),
        "coach_voiced_s": round(sum(r["coach_voiced_s"] for r in rounds), 1),
    }


def _voiced_seconds(path: Path) -> float:
    """Seconds of the output file in which the coach was audible (20 ms windows over 1 % of full scale)."""
    pcm, rate = read_wav(path)
    return round(float(np.count_nonzero(envelope(pcm, rate, 20) > 0.01)) * 0.02, 1)


def run(tmp: Path, *, window: float, rounds: int) -> dict[str, Any]:
    """``rounds`` rounds per transport (1: WebRTC then WebSocket; 2: ABBA), ``window`` s per transport in all."""
    order = ["webrtc", "websocket", "websocket", "webrtc"] if rounds == 2 else ["webrtc", "websocket"] * rounds
    per: dict[str, list[dict[str, Any]]] = {"webrtc": [], "websocket": []}
    for transport in order:
        per[transport].append(asyncio.run(_measure(tmp, window / rounds, transport)))
    out: dict[str, Any] = {transport: _combine(samples) for transport, samples in per.items()}
    webrtc, websocket = (out[t]["client_cpu_percent_of_one_core"] for t in ("webrtc", "websocket"))
    out["websocket_minus_webrtc_points"] = round(websocket - webrtc, 1)
    out["mic_speech"] = speech_kind()
    return out
