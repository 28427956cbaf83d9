"""The coach never hears itself as the other side: hints play into the sink whose monitor is the them channel.

In-process stand-in for "headphones and a call app on the same default output": the player's sink feeds a
monitor source (real time, a FIFO as a sound server's monitor is) that is the them link's audio. The server
"transcribes" whatever it hears there as the hint's own words, as a real ASR would.

Two guards are measured, each on its own:

* the audio gate (``them_gate``, what ``voicecoach run`` uses for a monitor capture): the them link hears
  silence while the hint sounds, so no turn is even committed (nothing transcribed, nothing billed);
* the text check alone (no gate): the turn is committed and transcribed, and the coach drops it because it is
  the words of the hint that was playing.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_harness import meeting, settings_for
from faults_harness import LiveSession, RecordingView, figure
from them_harness import spoken_order, them_calls

from voicecoach.audio.files import PcmSource
from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, WIRE_RATE, Pcm, silence
from voicecoach.runner import Runner
from voicecoach.server import RealtimeServer
from voicecoach.store import SessionStore

HINT = "Say the budget is on track, with a reserve for the second quarter."


class Monitor:
    """A push sink (what the player writes, in real time) and the monitor source of it (what the them link
    reads, 20 ms at a time: the sink's audio as it was written, silence when there is none)."""

    rate = 24_000
    channels = 1
    realtime = False  # paced by the uplink, like a file

    def __init__(self) -> None:
        self._fifo: collections.deque[np.int16] = collections.deque()
        self.voiced_frames = 0

    def write(self, pcm: Pcm) -> None:
        upsampled = np.repeat(pcm.reshape(-1), WIRE_RATE // self.rate)  # 24 → 48 kHz: crude, but speech stays speech
        self._fifo.extend(upsampled.astype(np.int16))

    async def read(self) -> Pcm:
        n = min(WIRE_FRAME_SAMPLES, len(self._fifo))
        frame = silence(WIRE_FRAME_SAMPLES)
        frame[:n] = [self._fifo.popleft() for _ in range(n)]
        if np.abs(frame).max() > 300:
            self.voiced_frames += 1
        return frame

    def close(self) -> None:
        pass


@pytest.mark.parametrize("gate", [True, False], ids=["audio-gate", "text-check-only"])
async def test_the_coachs_voice_on_the_captured_sink_is_no_them_message(
    gate: bool, server_factory: Any, tmp_path: Path
) -> None:
    server: RealtimeServer = await server_factory(
        utterances=["Good question."], them_utterances=[HINT, HINT], responses=[HINT]
    )
    monitor = Monitor()
    settings = settings_for(server, tmp_path)
    view = RecordingView()
    runner = Runner(
        settings,
        view,
        PcmSource(meeting([("Good question.", 6.0)]), WIRE_RATE),
        monitor,
        store=SessionStore(tmp_path / "sessions"),
        them=monitor,
        them_gate=gate,
    )
    live = LiveSession(server, runner, view, asyncio.create_task(runner.run()))
    async with live:
        await live.until(lambda: any(line.startswith("Coach:") for line in runner.report.transcript), 20, "the hint")
        await live.until(lambda: not runner.coach.busy, 20, "the hint to finish playing")
        await asyncio.sleep(1.5)  # what the them session would make of the hint's tail has arrived by now
        await live.finish()

    assert monitor.voiced_frames > 25, "the hint's voice did reach the captured sink"
    assert not [line for line in spoken_order(runner) if line.startswith("Them:")]
    assert not [line for line in runner.report.transcript if line.startswith("Them:")]
    them_completed = [
        e
        for call in them_calls(server)
        for e in call.events_sent
        if e["type"] == "conversation.item.input_audio_transcription.completed"
    ]
    dropped = runner.coach.speakers.dropped_own_voice
    if gate:
        assert them_completed == [] and dropped == 0  # the them session heard silence: no turn at all
        assert runner.them is not None and runner.them.source.frames_gated > 0
    else:
        assert len(them_completed) >= 1 and dropped == len(them_completed)  # heard, and dropped as our own
    figure(
        f"coach's voice on the captured sink ({'gate' if gate else 'text check only'})",
        them_turns_transcribed=len(them_completed),
        dropped_as_own_voice=dropped,
    )
