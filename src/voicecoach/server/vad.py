"""Energy voice activity detection on the input timeline (20 ms frames of 48 kHz mono).

The real ``server_vad`` is a model; this one is an RMS gate good enough for scripted speech, with the same
knobs and the same event semantics (realtime-protocol.md §4.3, §7.1):

* ``threshold`` (0..1) maps *logarithmically* to an RMS level: ``level_dbfs = -60 + 50 * threshold``, so the
  default 0.5 gates at -35 dBFS (RMS ≈ 0.018 of full scale), 0 at -60 dBFS (anything but digital silence) and
  1 at -10 dBFS (only shouting). Once speech has started, the level to *stay* in speech is half the
  threshold level (-6 dB of hysteresis) so that soft word endings do not end a turn.
* Speech must last at least ``MIN_SPEECH_MS`` before ``speech_started`` fires; shorter blips (a cough, a
  click) are ignored.
* ``audio_start_ms`` = onset - ``prefix_padding_ms`` (clamped to the end of the previous turn): the start of
  the audio the model gets. ``audio_end_ms`` = the moment ``silence_duration_ms`` of quiet has passed: the
  end of that audio, silence included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..audio.frames import Pcm, rms

log = logging.getLogger(__name__)

MIN_SPEECH_MS = 100
FRAME_MS = 20
# semantic_vad has no threshold or silence knobs; its eagerness maps to how long a pause ends a turn.
_EAGERNESS_SILENCE_MS = {"low": 1200, "medium": 600, "auto": 600, "high": 300}


def rms_for_threshold(threshold: float) -> float:
    """The RMS level (fraction of full scale) that ``threshold`` (0..1) gates at."""
    return float(10 ** ((-60.0 + 50.0 * threshold) / 20.0))


@dataclass(frozen=True)
class VadSettings:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 200

    @classmethod
    def from_turn_detection(cls, turn_detection: dict[str, Any]) -> VadSettings:
        if turn_detection.get("type") == "semantic_vad":
            silence = _EAGERNESS_SILENCE_MS.get(str(turn_detection.get("eagerness", "auto")), 600)
            return cls(silence_duration_ms=silence)
        return cls(
            threshold=float(turn_detection.get("threshold", 0.5)),
            prefix_padding_ms=int(turn_detection.get("prefix_padding_ms", 300)),
            silence_duration_ms=int(turn_detection.get("silence_duration_ms", 200)),
        )


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["started", "stopped"]
    ms: int  # audio_start_ms for "started", audio_end_ms for "stopped"


class TurnDetector(Protocol):
    """What the input buffer needs of a turn detector (the server's ears for turns): this energy gate, or a
    model (the local backend's Silero, :mod:`voicecoach.local.vad`). One per session; stateful."""

    @property
    def settings(self) -> VadSettings: ...

    @property
    def in_speech(self) -> bool: ...

    def reset(self, floor_ms: int) -> None:
        """Forget any turn in progress; audio before ``floor_ms`` belongs to an earlier turn."""

    def push_frame(self, frame: Pcm, frame_end_ms: int) -> VadEvent | None:
        """One 20 ms frame of 48 kHz mono ending at ``frame_end_ms``; a transition when one happens."""


TurnDetectorFactory = Callable[[VadSettings], TurnDetector]


class EnergyVad:
    """Feed one frame level at a time with :meth:`push` (or the frame itself with :meth:`push_frame`); it
    returns a transition when one happens."""

    def __init__(self, settings: VadSettings) -> None:
        self.settings = settings
        self._on = rms_for_threshold(settings.threshold)
        self._off = self._on / 2
        self._state: Literal["idle", "onset", "speech"] = "idle"
        self._onset_ms = 0
        self._voiced_ms = 0
        self._last_voice_end_ms = 0
        self._floor_ms = 0  # audio before this belongs to an earlier turn

    @property
    def in_speech(self) -> bool:
        return self._state == "speech"

    def reset(self, floor_ms: int) -> None:
        """Forget any turn in progress (buffer cleared or committed by hand); audio before ``floor_ms`` is gone."""
        self._state = "idle"
        self._voiced_ms = 0
        self._floor_ms = floor_ms

    def push_frame(self, frame: Pcm, frame_end_ms: int) -> VadEvent | None:
        return self.push(rms(frame), frame_end_ms)

    def push(self, level: float, frame_end_ms: int) -> VadEvent | None:
        frame_start_ms = frame_end_ms - FRAME_MS
        if self._state == "idle":
            if level >= self._on:
                self._state, self._onset_ms, self._voiced_ms = "onset", frame_start_ms, FRAME_MS
                return self._maybe_start()
            return None
        if self._state == "onset":
            if level >= self._on:
                self._voiced_ms += FRAME_MS
                return self._maybe_start()
            self._state = "idle"  # too short to be speech
            return None
        if level >= self._off:
            self._last_voice_end_ms = frame_end_ms
            return None
        if frame_end_ms - self._last_voice_end_ms >= self.settings.silence_duration_ms:
            self._state = "idle"
            self._floor_ms = frame_end_ms
            log.debug("vad: speech stopped at %d ms", frame_end_ms)
            return VadEvent("stopped", frame_end_ms)
        return None

    def _maybe_start(self) -> VadEvent | None:
        if self._voiced_ms < MIN_SPEECH_MS:
            return None
        self._state = "speech"
        self._last_voice_end_ms = self._onset_ms + self._voiced_ms
        start = max(self._floor_ms, self._onset_ms - self.settings.prefix_padding_ms)
        log.debug("vad: speech started (onset %d ms, audio_start_ms %d)", self._onset_ms, start)
        return VadEvent("started", start)
