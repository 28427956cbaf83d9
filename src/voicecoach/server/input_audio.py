"""The input audio buffer: everything the client said since the last commit, on one sample timeline.

Audio arrives as 48 kHz mono PCM of any length (RTP frames, or decoded ``input_audio_buffer.append``
payloads). It is cut into 20 ms frames; each frame goes into the buffer and, while turn detection is on,
through the VAD. Positions are absolute sample counts since the session began, so ``audio_start_ms`` /
``audio_end_ms`` are offsets into "all audio written to the buffer during the session" as on the real API.

The buffer keeps at most ``max_seconds`` (oldest audio is dropped) so a long silent meeting cannot grow it
without bound.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from ..audio.frames import WIRE_FRAME_SAMPLES, WIRE_RATE, FrameChunker, Pcm, silence
from .vad import EnergyVad, TurnDetector, TurnDetectorFactory, VadEvent, VadSettings

_SAMPLES_PER_MS = WIRE_RATE // 1000


class InputAudio:
    """``detector``: makes the turn detector for the session's ``server_vad`` settings (the backend's ears:
    :class:`~voicecoach.server.vad.EnergyVad` by default)."""

    def __init__(
        self,
        turn_detection: dict[str, Any] | None,
        max_seconds: float = 120.0,
        *,
        detector: TurnDetectorFactory = EnergyVad,
    ) -> None:
        self._chunker = FrameChunker(WIRE_FRAME_SAMPLES)
        self._frames: deque[tuple[int, Pcm]] = deque()  # (absolute start sample, frame)
        self._buffered = 0
        self._max_samples = int(max_seconds * WIRE_RATE)
        self.total_samples = 0
        self._detector = detector
        self._vad: TurnDetector | None = None
        self.configure(turn_detection)

    def configure(self, turn_detection: dict[str, Any] | None) -> None:
        """Apply a (new) ``turn_detection`` setting; a turn in progress is kept if VAD stays on."""
        if turn_detection is None:
            self._vad = None
            return
        settings = VadSettings.from_turn_detection(turn_detection)
        if self._vad is None or self._vad.settings != settings:
            self._vad = self._detector(settings)
            self._vad.reset(self.now_ms)

    @property
    def now_ms(self) -> int:
        return self.total_samples // _SAMPLES_PER_MS

    @property
    def buffered_ms(self) -> float:
        return self._buffered / _SAMPLES_PER_MS

    @property
    def in_speech(self) -> bool:
        return self._vad is not None and self._vad.in_speech

    def push(self, pcm: Pcm) -> list[VadEvent]:
        """Add audio; returns the VAD transitions it caused, in order."""
        events: list[VadEvent] = []
        for frame in self._chunker.push(pcm):
            start = self.total_samples
            self._frames.append((start, frame))
            self._buffered += frame.size
            self.total_samples += frame.size
            while self._buffered > self._max_samples:
                _, old = self._frames.popleft()
                self._buffered -= old.size
            if self._vad is not None:
                event = self._vad.push_frame(frame, self.now_ms)
                if event is not None:
                    events.append(event)
        return events

    def take(self, start_ms: int, end_ms: int) -> Pcm:
        """The audio in ``[start_ms, end_ms)`` (what a VAD turn commits); the buffer then starts at ``end_ms``."""
        lo, hi = start_ms * _SAMPLES_PER_MS, end_ms * _SAMPLES_PER_MS
        parts = [f[max(0, lo - s) : max(0, hi - s)] for s, f in self._frames if s < hi and s + f.size > lo]
        self._drop_before(hi)
        return np.concatenate(parts) if parts else silence(0)

    def take_all(self) -> Pcm:
        """Everything buffered (a manual commit); the buffer is then empty and any turn in progress forgotten."""
        parts = [f for _, f in self._frames]
        self.clear()
        return np.concatenate(parts) if parts else silence(0)

    def clear(self) -> None:
        self._frames.clear()
        self._buffered = 0
        if self._vad is not None:
            self._vad.reset(self.now_ms)

    def _drop_before(self, sample: int) -> None:
        while self._frames and self._frames[0][0] + self._frames[0][1].size <= sample:
            _, old = self._frames.popleft()
            self._buffered -= old.size
