"""Helpers for the two-channel tests: a scripted dialogue rendered as two in-step tracks, and a live session
that hears both (the microphone on the main link, the other side on the them link)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from e2e_harness import settings_for
from faults_harness import LiveSession, RecordingView

from voicecoach.audio.files import PcmSource, WavSink
from voicecoach.audio.frames import WIRE_RATE, Pcm, silence
from voicecoach.runner import Runner
from voicecoach.server import RealtimeServer
from voicecoach.server.voice import synth_speech
from voicecoach.store import SessionStore

Who = Literal["you", "them"]
Dialogue = Sequence[tuple[Who, str, float]]  # (speaker, text, pause after in seconds)


def dialogue(lines: Dialogue, lead_in: float = 0.4) -> tuple[Pcm, Pcm]:
    """The microphone's track and the other side's, in step: each speaker's lines spoken, silence elsewhere."""
    start = silence(int(lead_in * WIRE_RATE))
    tracks: dict[Who, list[Pcm]] = {"you": [start], "them": [start]}
    for who, text, pause in lines:
        speech = synth_speech(text, WIRE_RATE)
        for speaker, parts in tracks.items():
            parts += [speech if speaker == who else silence(len(speech)), silence(int(pause * WIRE_RATE))]
    return np.concatenate(tracks["you"]), np.concatenate(tracks["them"])


def texts(lines: Dialogue, who: Who) -> list[str]:
    return [text for speaker, text, _ in lines if speaker == who]


async def start_two_sided(
    server: RealtimeServer, tmp_path: Path, lines: Dialogue, **overrides: Any
) -> tuple[LiveSession, PcmSource]:
    """A Runner hearing ``lines`` on both channels, running in a task (leave with ``async with``)."""
    mic, them = dialogue(lines)
    settings = settings_for(server, tmp_path, **overrides)
    view = RecordingView()
    them_source = PcmSource(them, WIRE_RATE)
    runner = Runner(
        settings,
        view,
        PcmSource(mic, WIRE_RATE),
        WavSink(tmp_path / "out.wav"),
        store=SessionStore(tmp_path / "sessions"),
        them=them_source,
    )
    task = asyncio.create_task(runner.run(), name="two-sided-session")
    return LiveSession(server, runner, view, task), them_source


def them_calls(server: RealtimeServer) -> list[Any]:
    """The server's transcription-only calls (the them link's sessions), in the order they came."""
    return [c for c in server.calls if _first_session_type(c) == "transcription"]


def main_calls(server: RealtimeServer) -> list[Any]:
    return [c for c in server.calls if _first_session_type(c) != "transcription"]


def _first_session_type(call: Any) -> str | None:
    for event in call.events_received:
        if event.get("type") == "session.update":
            return str(event["session"].get("type"))
    return None


def spoken_order(runner: Runner) -> list[str]:
    """The finished utterances of the coach's transcript, in the order it reads (what hint windows see)."""
    from voicecoach.coach.labels import message_label

    return [
        f"{message_label(m)}: {m.text}" for m in runner.coach.conversation.window(100) if m.role != "coach" and m.done
    ]
