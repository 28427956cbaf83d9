"""Helpers for the end-to-end tests: render a meeting, run a real session, read back what it left."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voicecoach.audio.files import PcmSource, WavSink, read_wav
from voicecoach.audio.frames import WIRE_RATE, Pcm, envelope, silence
from voicecoach.coach.settings import CoachSettings
from voicecoach.config import Settings, load_settings
from voicecoach.runner import Runner, RunReport
from voicecoach.server import RealtimeServer
from voicecoach.server.voice import synth_speech
from voicecoach.store import SessionStore
from voicecoach.ui.plain import PlainView


def meeting(lines: Sequence[tuple[str, float]], lead_in: float = 0.4) -> Pcm:
    """Synthetic speech for each line (deterministic, no espeak needed), each followed by its pause."""
    parts: list[Pcm] = [silence(int(lead_in * WIRE_RATE))]
    for text, pause in lines:
        parts += [synth_speech(text, WIRE_RATE), silence(int(pause * WIRE_RATE))]
    return np.concatenate(parts)


def settings_for(server: RealtimeServer, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "ice_hosts": ["127.0.0.1"],
        "events_file": tmp_path / "events.jsonl",
        "vad_silence_ms": 300,
        "plain": True,
        "coach": CoachSettings(cooldown_seconds=1.0),
    }
    values.update(overrides)
    return load_settings(None, values)


class Recorded:
    """A finished session's artefacts, read back from disk."""

    def __init__(self, report: RunReport, events_file: Path, output_file: Path, runner: Runner) -> None:
        self.report = report
        self.runner = runner
        self.events = [json.loads(line) for line in events_file.read_text().splitlines()]
        self.output, self.output_rate = read_wav(output_file)
        self.view_text = ""

    def sent(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [e["event"] for e in self.events if e["dir"] == "sent" and type_ in (None, e["event"]["type"])]

    def received(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [e["event"] for e in self.events if e["dir"] == "received" and type_ in (None, e["event"].get("type"))]

    def types(self, direction: str) -> list[str]:
        return [e["event"].get("type") for e in self.events if e["dir"] == direction]

    def voiced_seconds(self, threshold: float = 0.01) -> float:
        env = envelope(self.output, self.output_rate, 20)
        return float(np.count_nonzero(env > threshold)) * 0.02


Until = Callable[[Runner], bool]


def utterances_heard(n: int) -> Until:
    """True once ``n`` user utterances are transcribed and no hint is in flight."""
    return lambda runner: (
        sum(1 for line in runner.report.transcript if line.startswith("You:")) >= n and not runner.coach.busy
    )


async def run_session(
    server: RealtimeServer,
    tmp_path: Path,
    audio: Pcm,
    *,
    until: Until | None = None,
    during: Callable[[Runner], Any] | None = None,
    timeout: float = 30.0,
    **overrides: Any,
) -> Recorded:
    """Run one session on ``audio`` until ``until(runner)`` holds (polled), ``--duration``, or ``timeout``."""
    settings = settings_for(server, tmp_path, **overrides)
    output = tmp_path / "out.wav"
    source = PcmSource(audio, WIRE_RATE)
    view_text = io.StringIO()
    runner = Runner(settings, PlainView(view_text), source, WavSink(output), store=SessionStore())

    async def watch() -> None:
        if during is not None:
            await during(runner)
        if until is None:
            return
        while not until(runner):
            await asyncio.sleep(0.02)
        runner.stop("test condition met")

    helper = asyncio.create_task(watch())
    try:
        async with asyncio.timeout(timeout):
            report = await runner.run()
    finally:
        helper.cancel()
        await asyncio.gather(helper, return_exceptions=True)
    assert settings.events_file is not None
    recorded = Recorded(report, settings.events_file, output, runner)
    recorded.view_text = view_text.getvalue()
    return recorded
