"""Issue 3's acceptance: ``voicecoach run --plain`` against the local server, on the virtual sound devices,
carries live speech both ways.

Speech is played into the virtual microphone with ``paplay``; the client (a real subprocess using the default
devices through sounddevice) sends it over WebRTC to the server, which hears it, transcribes it from its script,
and answers the trigger phrase; the coach's voice is recorded back from the virtual speaker.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pulse
import pytest
from test_virtual_devices import Recorder

from voicecoach.audio.files import read_wav
from voicecoach.audio.frames import WIRE_RATE, envelope, resample
from voicecoach.server import RealtimeServer, Scenario, ServerConfig

pytestmark = pytest.mark.usefixtures("virtual_audio")
UTTERANCE = "That is a good question."
HINT = "Start with the numbers, then the risks."


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    path = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), UTTERANCE], check=True, timeout=10)
    return path


async def test_live_speech_both_ways_on_virtual_devices(
    virtual_audio: pulse.VirtualAudio, speech: Path, tmp_path: Path
) -> None:
    scenario = Scenario(utterances=[UTTERANCE], responses=[HINT])
    async with RealtimeServer(ServerConfig(scenario=scenario, voice="synth")) as server:
        env = {**virtual_audio.child_env(), "VOICECOACH_DATA_DIR": str(tmp_path / "data"),
               "XDG_CONFIG_HOME": str(tmp_path / "config")}  # fmt: skip
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voicecoach", "run", "--plain", "--base-url", server.base_url,
            "--ice-host", "127.0.0.1", "--duration", "30",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        lines: list[str] = []

        async def wait_for_line(fragment: str) -> None:
            assert client.stdout is not None
            async with asyncio.timeout(20):
                while not any(fragment in line for line in lines):
                    raw = await client.stdout.readline()
                    assert raw, f"the client exited before {fragment!r}: {lines}"
                    lines.append(raw.decode())

        recorder = Recorder(virtual_audio, tmp_path / "speaker.raw")
        try:
            await wait_for_line("[listening]")
            await recorder.flowing()
            play = await asyncio.create_subprocess_exec(
                "paplay", "--device=vmic", str(speech), env=virtual_audio.child_env()
            )
            async with asyncio.timeout(20):
                await play.wait()
            # Mic → wire: the server heard the speech and the client printed its transcript.
            await wait_for_line(f"You: {UTTERANCE}")
            # Wire → speaker: the trigger phrase got a hint, and its voice came out of the virtual speaker.
            await wait_for_line(f"Coach (quick): {HINT}")
            async with asyncio.timeout(20):
                while _voiced_seconds(recorder.path) < 1.0:
                    await asyncio.sleep(0.1)
            assert client.stdin is not None
            client.stdin.write(b"q\n")
            await client.stdin.drain()
            async with asyncio.timeout(15):
                await client.wait()
            assert client.returncode == 0
        finally:
            recorder.stop()
            if client.returncode is None:
                client.kill()
                await client.wait()
        heard = server.calls[0].received_audio
    # What the server received over WebRTC is the speech played into the microphone: envelope correlation.
    source, rate = read_wav(speech)
    reference = envelope(resample(source, rate, WIRE_RATE), WIRE_RATE)
    correlation = best_lag_correlation(envelope(heard, WIRE_RATE), reference)
    assert correlation >= 0.9, correlation


def best_lag_correlation(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Highest Pearson correlation of ``reference`` against any same-length stretch of ``recorded``.

    Stretches of pure digital silence have no variance and no correlation; they are skipped, not NaN.
    """
    n = reference.size
    assert recorded.size >= n, "the server heard less audio than was played"
    windows = np.lib.stride_tricks.sliding_window_view(recorded, n)
    centred = windows - windows.mean(axis=1, keepdims=True)
    ref = reference - reference.mean()
    norms = np.linalg.norm(centred, axis=1) * np.linalg.norm(ref)
    scores = np.divide(centred @ ref, norms, out=np.full(norms.shape, -1.0), where=norms > 0)
    return float(scores.max())


def _voiced_seconds(raw: Path) -> float:
    if not raw.exists():
        return 0.0
    pcm = np.frombuffer(raw.read_bytes()[: raw.stat().st_size // 2 * 2], dtype="<i2").astype(np.int16)
    return float(np.count_nonzero(envelope(pcm, WIRE_RATE) > 0.02)) * 0.02
