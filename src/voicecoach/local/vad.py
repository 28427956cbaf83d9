"""Streaming Silero voice activity detection with the energy VAD's knobs and events (server/vad.py).

The model is the Silero v6 ONNX file that ships inside faster-whisper (``faster_whisper/assets/
silero_vad_v6.onnx``, 1.2 MB, MIT), run with onnxruntime (a dependency of faster-whisper): no extra package,
no torch. faster-whisper itself only runs it over a whole recording; here it runs window by window, carrying
the model's LSTM state (``h``, ``c``) and the 64 samples of context that precede each window, exactly as
faster-whisper's batch call lays them out (tests/local/test_vad.py checks the two agree).

Timeline: the caller pushes 20 ms frames of 48 kHz mono (the server's input frames). They are resampled to
16 kHz (av, stateful, no clicks at frame edges) and cut into 512-sample windows (32 ms), the window Silero
was trained on. A window's time is anchored to the caller's ``frame_end_ms`` (the frame that completed it),
so decisions lag the audio by at most one window plus the resampler's ~1 ms.

Decisions, on the model's speech probability ``p`` per window (the same meaning as the Realtime API's
``server_vad.threshold``: a probability, default 0.5):

* a window is *voiced* when ``p >= threshold``; once in speech, it *stays* voiced while
  ``p >= threshold - 0.15`` (Silero's own hysteresis, ``neg_threshold``), so soft word endings do not end a turn;
* ``speech_started`` needs :data:`MIN_SPEECH_MS` of consecutive voiced windows (a click or a cough is one
  window); its ``audio_start_ms`` is the first voiced window's start minus ``prefix_padding_ms``, clamped to the
  end of the previous turn. The padding matters: without it Whisper misses the first word's onset
  (offline-backend.md §4);
* ``speech_stopped`` fires once ``silence_duration_ms`` has passed since the last voiced window; its
  ``audio_end_ms`` is that moment (the last voiced window's end + the silence), the energy VAD's semantics.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from ..audio.frames import WIRE_RATE, Pcm, Resampler
from ..server.vad import VadEvent, VadSettings
from .errors import LOCAL_EXTRA_HINT, LocalRuntimeMissing

log = logging.getLogger(__name__)

VAD_RATE = 16_000
WINDOW_SAMPLES = 512  # Silero's window at 16 kHz
WINDOW_MS = WINDOW_SAMPLES * 1000 // VAD_RATE  # 32
CONTEXT_SAMPLES = 64  # samples of the previous window the v5/v6 model sees before each window
STATE_SHAPE = (1, 1, 128)
HYSTERESIS = 0.15  # Silero's neg_threshold = threshold - 0.15
MIN_SPEECH_MS = 2 * WINDOW_MS  # one voiced window alone (a click) never starts a turn
_SAMPLES_PER_MS = VAD_RATE // 1000

Window = npt.NDArray[np.float32]


class SpeechModel(Protocol):
    """A speech-probability model fed consecutive windows of one stream. One instance per stream (it has state)."""

    def probability(self, window: Window) -> float:
        """P(speech) for the next :data:`WINDOW_SAMPLES` samples (float32 in [-1, 1], 16 kHz)."""
        ...


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise LocalRuntimeMissing(f"onnxruntime (for the Silero VAD) is not installed: {LOCAL_EXTRA_HINT}") from exc
    return onnxruntime


def silero_path() -> Path:
    """The Silero ONNX file inside faster-whisper (:class:`LocalRuntimeMissing` if faster-whisper is absent)."""
    try:
        from faster_whisper.utils import get_assets_path
    except ImportError as exc:
        raise LocalRuntimeMissing(
            f"faster-whisper (which ships the Silero VAD model) is not installed: {LOCAL_EXTRA_HINT}"
        ) from exc
    path = Path(get_assets_path()) / "silero_vad_v6.onnx"
    if not path.is_file():
        raise LocalRuntimeMissing(
            f"the Silero VAD model {path} is missing: reinstall faster-whisper ({LOCAL_EXTRA_HINT})"
        )
    return path


_SESSION: Any = None


def _session() -> Any:
    """One onnxruntime session per process, shared by every stream (``run`` is thread-safe; state is per stream)."""
    global _SESSION
    if _SESSION is None:
        ort = _ort()
        options = ort.SessionOptions()
        # One thread: a window costs well under a millisecond, and thread hand-offs would cost more than that.
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        options.log_severity_level = 4  # onnxruntime's own warnings would land on the user's terminal
        _SESSION = ort.InferenceSession(str(silero_path()), providers=["CPUExecutionProvider"], sess_options=options)
    return _SESSION


class SileroModel:
    """Silero v6 run window by window (the state that faster-whisper's batch call carries across rows)."""

    def __init__(self) -> None:
        self._session = _session()
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def probability(self, window: Window) -> float:
        batch = np.concatenate([self._context, window]).reshape(1, -1)
        out, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = window[-CONTEXT_SAMPLES:].copy()
        return float(np.asarray(out).reshape(-1)[0])


def load_silero() -> SileroModel:
    """A fresh Silero stream (blocking the first time: loads the 1.2 MB model, ~50 ms)."""
    return SileroModel()


class SileroVad:
    """Feed 20 ms frames of 48 kHz mono with :meth:`push_frame`; it returns a transition when one happens.

    The same contract as :class:`voicecoach.server.vad.EnergyVad` (settings, ``in_speech``, ``reset``), with
    frames instead of levels because the model needs the samples. ``model`` is injectable for unit tests of the
    decision rule; by default it is a fresh :class:`SileroModel`.
    """

    def __init__(self, settings: VadSettings, model: SpeechModel | None = None, *, in_rate: int = WIRE_RATE) -> None:
        self.settings = settings
        self._model: SpeechModel = model if model is not None else load_silero()
        self._on = settings.threshold
        self._off = max(0.01, settings.threshold - HYSTERESIS)
        self._resampler = Resampler(in_rate, 1, VAD_RATE, 1)
        self._pending = np.zeros(0, dtype=np.float32)
        self._state: Literal["idle", "onset", "speech"] = "idle"
        self._onset_ms = 0
        self._voiced_ms = 0
        self._last_voice_end_ms = 0
        self._floor_ms = 0  # audio before this belongs to an earlier turn
        self.last_probability = 0.0  # for benchmarks and debugging

    @property
    def in_speech(self) -> bool:
        return self._state == "speech"

    def reset(self, floor_ms: int) -> None:
        """Forget any turn in progress (buffer cleared or committed by hand); audio before ``floor_ms`` is gone.

        The model's state is kept: the audio stream itself goes on, and Silero's LSTM expects continuity.
        """
        self._state = "idle"
        self._voiced_ms = 0
        self._floor_ms = floor_ms

    def push_frame(self, frame: Pcm, frame_end_ms: int) -> VadEvent | None:
        """One frame (any length, mono int16 at ``in_rate``) ending at ``frame_end_ms`` on the input timeline.

        At most one event per call: a frame of up to one window (32 ms) completes at most one window, and one
        window makes at most one transition. Longer frames are refused rather than losing an event.
        """
        if frame.shape[0] * 1000 > WINDOW_MS * self._resampler.in_rate:
            raise ValueError(f"a frame longer than {WINDOW_MS} ms cannot be pushed at once ({frame.shape[0]} samples)")
        fresh = self._resampler.process(frame).astype(np.float32) / 32768.0
        self._pending = np.concatenate([self._pending, fresh]) if self._pending.size else fresh
        event: VadEvent | None = None
        while self._pending.size >= WINDOW_SAMPLES:
            window, self._pending = self._pending[:WINDOW_SAMPLES], self._pending[WINDOW_SAMPLES:]
            # The window ended where the caller's frame ends, minus what is left over after it.
            window_end_ms = frame_end_ms - self._pending.size // _SAMPLES_PER_MS
            self.last_probability = self._model.probability(window)
            event = self._decide(self.last_probability, window_end_ms) or event
        return event

    def _decide(self, p: float, window_end_ms: int) -> VadEvent | None:
        window_start_ms = window_end_ms - WINDOW_MS
        if self._state == "idle":
            if p >= self._on:
                self._state, self._onset_ms, self._voiced_ms = "onset", max(window_start_ms, 0), WINDOW_MS
                return self._maybe_start()
            return None
        if self._state == "onset":
            if p >= self._on:
                self._voiced_ms += WINDOW_MS
                return self._maybe_start()
            self._state = "idle"  # too short to be speech
            return None
        if p >= self._off:
            self._last_voice_end_ms = window_end_ms
            return None
        end_ms = self._last_voice_end_ms + self.settings.silence_duration_ms
        if window_end_ms >= end_ms:
            self._state = "idle"
            self._floor_ms = end_ms
            log.debug("vad: speech stopped at %d ms", end_ms)
            return VadEvent("stopped", end_ms)
        return None

    def _maybe_start(self) -> VadEvent | None:
        if self._voiced_ms < MIN_SPEECH_MS:
            return None
        self._state = "speech"
        self._last_voice_end_ms = self._onset_ms + self._voiced_ms
        start = max(self._floor_ms, self._onset_ms - self.settings.prefix_padding_ms)
        log.debug("vad: speech started (onset %d ms, audio_start_ms %d)", self._onset_ms, start)
        return VadEvent("started", start)
