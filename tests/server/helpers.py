"""A virtual-time driver for the sans-I/O session core: it plays the output track and the voice renderer.

Time only moves when the test says so (20 ms steps), so event orders and audio bookkeeping are exact and the
tests need no sleeping.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import numpy as np

from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, Pcm, silence
from voicecoach.server.defaults import default_session
from voicecoach.server.ids import IdFactory
from voicecoach.server.outputs import ClearAudio, CloseCall, Output, PlayAudio, SendEvent, Synthesize
from voicecoach.server.scenario import Scenario
from voicecoach.server.session import RealtimeSession, SessionOptions
from voicecoach.server.voice import synth_speech

STEP = 0.02
SCENARIO = Scenario(
    utterances=["Thanks for joining. Let's look at the roadmap.", "That's a good question. How do we scale it?"],
    responses=["Start with the numbers: revenue grew twelve percent.", "Ask about the hiring plan next."],
)


class Harness:
    """One session, a fake output track playing in real (virtual) time, and every event it sent."""

    def __init__(
        self,
        *,
        options: SessionOptions | None = None,
        scenario: Scenario = SCENARIO,
        session: dict[str, Any] | None = None,
        synth_delay: float = 0.0,
    ) -> None:
        self.now = 0.0
        self.session = RealtimeSession(
            session or default_session("sess_test"),
            now=0.0,
            unix_time=1_700_000_000.0,
            scenario=scenario,
            options=options,
            ids=IdFactory(seed=7),
        )
        self.events: list[dict[str, Any]] = []
        self.queue: deque[list[Any]] = deque()  # [response_id, pcm, offset]
        self.played: dict[str, int] = {}  # samples played per response
        self.heard: list[Pcm] = []  # what the track sent, frame by frame
        self.clears = 0
        self.closed: str | None = None
        self.synth_delay = synth_delay
        self._synth: list[tuple[float, str, str]] = []
        self.apply(self.session.start(self.now))

    # --- carrying out outputs --------------------------------------------------------------------------------

    def apply(self, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, SendEvent):
                json.dumps(output.event)  # every event must be JSON-ready
                self.events.append(output.event)
            elif isinstance(output, PlayAudio):
                self.queue.append([output.response_id, output.pcm, 0])
            elif isinstance(output, ClearAudio):
                self.queue.clear()
                self.clears += 1
            elif isinstance(output, Synthesize):
                self._synth.append((self.now + self.synth_delay, output.response_id, output.text))
            elif isinstance(output, CloseCall):
                self.closed = output.reason

    def send(self, event: dict[str, Any] | str) -> list[dict[str, Any]]:
        """Send one client event; returns the events it caused right away."""
        before = len(self.events)
        text = event if isinstance(event, str) else json.dumps(event)
        self.apply(self.session.receive_text(text, self.now))
        return self.events[before:]

    def step(self, audio: Pcm | None = None) -> None:
        """Advance 20 ms: deliver due voices, play one frame, take one input frame, tick."""
        self.now = round(self.now + STEP, 6)
        due = [s for s in self._synth if s[0] <= self.now]
        self._synth = [s for s in self._synth if s[0] > self.now]
        for _, response_id, text in due:
            self.apply(self.session.speech_ready(response_id, synth_speech(text), self.now))
        self._play_frame()
        if audio is not None:
            self.apply(self.session.receive_audio(audio, self.now))
        self.apply(self.session.tick(self.now))

    def _play_frame(self) -> None:
        need = WIRE_FRAME_SAMPLES
        frame: list[Pcm] = []
        touched: list[str] = []
        while need and self.queue:
            entry = self.queue[0]
            response_id, pcm, offset = entry
            take = pcm[offset : offset + need]
            frame.append(take)
            entry[2] += take.size
            need -= take.size
            self.played[response_id] = self.played.get(response_id, 0) + take.size
            if response_id not in touched:
                touched.append(response_id)
            if entry[2] >= pcm.size:
                self.queue.popleft()
        self.heard.append(np.concatenate([*frame, silence(need)]) if frame else silence(WIRE_FRAME_SAMPLES))
        for response_id in touched:
            finished = not any(e[0] == response_id for e in self.queue)
            played_ms = self.played[response_id] * 1000 // 48000
            self.apply(self.session.audio_played(response_id, played_ms, self.now, finished=finished))

    # --- conveniences ----------------------------------------------------------------------------------------

    def feed(self, pcm: Pcm) -> None:
        """Speak ``pcm`` into the session, 20 ms per step."""
        for start in range(0, pcm.size, WIRE_FRAME_SAMPLES):
            chunk = pcm[start : start + WIRE_FRAME_SAMPLES]
            self.step(np.concatenate([chunk, silence(WIRE_FRAME_SAMPLES - chunk.size)]))

    def quiet(self, seconds: float) -> None:
        """Feed silence (the microphone keeps sending frames)."""
        for _ in range(round(seconds / STEP)):
            self.step(silence(WIRE_FRAME_SAMPLES))

    def wait_for(self, kind: str, *, limit: float = 30.0, after: int = 0, silent_mic: bool = True) -> dict[str, Any]:
        """Step until an event of ``kind`` (at index >= ``after``) appears; fails after ``limit`` virtual seconds."""
        end = self.now + limit
        while self.now < end:
            found = [e for e in self.events[after:] if e["type"] == kind]
            if found:
                return found[0]
            self.step(silence(WIRE_FRAME_SAMPLES) if silent_mic else None)
        raise AssertionError(f"no {kind} within {limit} s; saw {self.types(after)}")

    def types(self, after: int = 0) -> list[str]:
        return [e["type"] for e in self.events[after:]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def errors(self) -> list[dict[str, Any]]:
        return [e["error"] for e in self.of("error")]


def collapse(types: list[str]) -> list[str]:
    """Event types with runs of the same delta type collapsed to one entry (many 'x.delta' become one)."""
    out: list[str] = []
    for kind in types:
        if not (out and out[-1] == kind and kind.endswith(".delta")):
            out.append(kind)
    return out
