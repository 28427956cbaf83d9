"""``voicecoach demo``: a scripted meeting through the whole stack, against the built-in local server.

No key, no sound card, no internet. The local server runs in this process; the "microphone" and the other side
of the call ("them", on its own transcription-only session) are a rendered interview (espeak-ng speech when
installed, a voice-like synthetic signal otherwise). The other side says "good question" and "walk me through
it" and nothing fires; the user's "good question" then fires a quick hint about the other side's question, the
user's "walk me through it" full guidance, which "got it" cuts off. Everything else is the real client:
signaling, WebRTC on 127.0.0.1, the WebSocket of the them link, the coach, the player.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .app import Runs, run_tui, use_tui
from .audio.base import FrameSink
from .audio.files import NullSink, PcmSource, WavSink
from .audio.frames import WIRE_RATE, Pcm, silence
from .coach.actions import METRIC_LABELS, MetricName
from .config import load_settings
from .control import Controls, remote_controls
from .errors import AudioError
from .runner import RunReport
from .server import RealtimeServer, Scenario, ServerConfig
from .server.voice import speech_pcm
from .store import SessionStore
from .ui.metrics import format_ms
from .ui.plain import PlainView
from .ui.view import View, VoiceOutput

StopHook = Callable[[Callable[[str], None]], None]


Speaker = Literal["you", "them"]


@dataclass(frozen=True)
class Line:
    text: str
    pause_after: float  # seconds of silence after the line (the coach talks in some of these gaps)
    speaker: Speaker = "you"


# A pause of more than 2 s after the other side's phrase: a microphone trigger within ±2 s of the same phrase on
# their channel would be taken for their voice leaking from loudspeakers (the echo guard) and dropped.
MEETING = (
    Line("Thanks for joining. How would you cut the launch budget by ten percent?", 0.8, "them"),
    Line("Good question, I know. Take a moment.", 3.0, "them"),  # their "good question": nothing fires
    Line("Good question.", 4.5),  # the user's: the quick hint, about their question, plays in this pause
    Line("And the rollout? Walk me through it.", 3.0, "them"),  # their "walk me through it": nothing either
    Line("Right. Walk me through it.", 2.5),  # the user's: full guidance starts, then…
    Line("Got it, thanks.", 1.5),  # …is cut off here
)
HINTS = (
    "Cut the paid ads test and delay the second hire; keep the pilot.",
    "Start with the pilot in two regions for four weeks, then widen it in stages. Tie each stage to a clear "
    "metric, such as crash rate and retention, and name who decides to go on. Close with the fallback plan if a "
    "stage misses its target.",
)
# The figures the summary lists, in the words of METRIC_LABELS (the same as the event log's).
LATENCIES: tuple[MetricName, ...] = (
    "hint.trigger_to_send_ms",
    "hint.trigger_to_audible_ms",
    "hint.interrupt_to_silence_ms",
)
LEAD_IN = 0.6  # seconds of silence before the first line


def meeting_sides(lines: tuple[Line, ...] = MEETING) -> tuple[Pcm, Pcm]:
    """The microphone's audio and the other side's, in step: each side's lines spoken, the other's silent."""
    lead_in = silence(int(LEAD_IN * WIRE_RATE))
    sides: dict[Speaker, list[Pcm]] = {"you": [lead_in], "them": [lead_in]}
    for line in lines:
        speech = speech_pcm(line.text, WIRE_RATE)
        for speaker, parts in sides.items():
            parts.append(speech if line.speaker == speaker else silence(len(speech)))
            parts.append(silence(int(line.pause_after * WIRE_RATE)))
    return np.concatenate(sides["you"]), np.concatenate(sides["them"])


async def run_demo(
    on_stop: StopHook,
    *,
    output_file: Path | None = None,
    events_file: Path | None = None,
    plain: bool | None = None,
) -> int:
    """Start the local server, play the scripted meeting into a real session, print a summary."""
    scenario = Scenario(
        utterances=[line.text for line in MEETING if line.speaker == "you"],
        them_utterances=[line.text for line in MEETING if line.speaker == "them"],
        responses=list(HINTS),
    )
    mic, them = meeting_sides()
    source = PcmSource(mic, WIRE_RATE)
    sink, where = demo_sink(output_file)
    async with RealtimeServer(ServerConfig(scenario=scenario)) as server:
        overrides = {
            "base_url": server.base_url,
            "api_key": "sk-demo-local",
            "ice_hosts": ["127.0.0.1"],
            "events_file": events_file,
            "duration": 40.0,  # a safety net; the end of the scripted meeting stops the session first
            "plain": plain,
            "output_file": output_file,
        }
        settings = load_settings(None, overrides)
        # The other side comes from a file-like source, not the monitor of the sink the hints play on: no gate.
        runs = Runs(settings, source, sink, SessionStore(), them=PcmSource(them, WIRE_RATE))
        on_stop(runs.stop)
        ender = asyncio.create_task(_end_after_meeting(source, runs.stop), name="demo-ender")
        try:
            if use_tui(settings):
                # Settings edited during the demo go to a scratch file, not the user's config.
                voice = VoiceOutput("none") if isinstance(sink, NullSink) else None  # else the settings say it
                code, report = await run_tui(runs, Path(tempfile.gettempdir()) / "voicecoach-demo-settings.toml", voice)
            else:
                view = PlainView()
                view.info("voicecoach demo: a scripted interview (you and them) against the built-in local server")
                view.info(f"the coach's voice goes to {where}")
                runner = runs(view)
                async with remote_controls(
                    Controls(runs.current, lambda: settings.profile), settings.hotkeys, view.info
                ):
                    code, report = 0, await runner.run()
        finally:
            ender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ender
    if report is not None:
        print_demo_summary(PlainView(), report, output_file=output_file, events_file=events_file)
    return code


def demo_sink(output_file: Path | None) -> tuple[FrameSink, str]:
    """Where the coach's voice goes: the file asked for, else the default output device, else nowhere."""
    if output_file is not None:
        return WavSink(output_file), str(output_file)
    try:
        from .audio.devices import open_sink

        return open_sink(None, None), "the default output device"
    except AudioError:
        return NullSink(), "no sound device (none found; use --output-file to keep it)"


def print_demo_summary(view: View, report: RunReport, *, output_file: Path | None, events_file: Path | None) -> None:
    view.info(f"demo finished: {report.reason}")
    for name in LATENCIES:
        values = [m.value for m in report.metrics if m.name == name]
        if values:
            view.info(f"  {METRIC_LABELS[name]}: " + ", ".join(format_ms(v) for v in values))
    view.info(f"  estimated cost at gpt-realtime-1.5 prices: ${report.cost_usd:.4f}")
    if report.session_path is not None:
        view.info(f"  transcript: {report.session_path}")
    if output_file:
        view.info(f"  the coach's voice is in {output_file}")
    if events_file:
        view.info(f"  every event is in {events_file}")


async def _end_after_meeting(source: PcmSource, stop: Callable[[str], None]) -> None:
    await source.ended.wait()
    stop("the scripted meeting is over")
