"""What the local server hears, says and sounds like: its backend, behind three seams.

* **Hears**: turn detection (a :class:`~voicecoach.server.vad.TurnDetector` per session, fed 20 ms frames) and
  the transcript of a committed turn.
* **Says**: the text of a response.
* **Sounds**: the voice that text is spoken in.

The sans-I/O core asks its :class:`SessionLines` (one per session) for the first two *synchronously*. A scripted
backend answers at once (the scenario's next line), so the core schedules the transcript and the reply on its
own clock, exactly as it always has: every client test relies on that timing. A live backend answers ``None``,
and the core hands the work to its driver instead (:class:`~voicecoach.server.outputs.Transcribe`,
:class:`~voicecoach.server.outputs.Generate`); the pump runs it here, off the core, and reports back.

Backends:

* :class:`ScriptedBackend` (the default; tests, the demo, ``voicecoach serve``): the energy VAD, the scenario's
  lines, and :func:`~voicecoach.server.voice.render_speech` (espeak-ng, or the synthetic voice);
* :class:`~voicecoach.server.local_backend.LocalBackend` (``voicecoach serve --backend local``,
  ``voicecoach run --local``): Silero VAD, faster-whisper, an OpenAI-compatible chat endpoint on this machine,
  espeak-ng or Piper (:mod:`voicecoach.local`).

Call order: :meth:`Backend.start` once before the server listens (it loads models and checks endpoints, so a
missing part fails at start, never mid-meeting), :meth:`Backend.lines` per session, the async methods from
the calls' pumps, :meth:`Backend.close` once after the last call closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..audio.frames import Pcm
from .outputs import ReplyRequest, Transcribe
from .scenario import Scenario, ScenarioCursor, default_scenario
from .vad import EnergyVad, TurnDetector, TurnDetectorFactory, VadSettings
from .voice import VoiceMode, check_voice_mode, render_speech


class SessionLines(Protocol):
    """What one session hears and says, as the sans-I/O core asks for it: at once, without I/O."""

    def turn_detector(self, settings: VadSettings) -> TurnDetector:
        """A new turn detector for these ``server_vad`` settings (a session makes one per settings change)."""
        ...

    def heard(self, *, them: bool) -> str | None:
        """The transcript of the turn just committed (``them``: a transcription-only session's), or None: the
        backend transcribes the audio itself (the core emits :class:`Transcribe`). Called once per commit."""
        ...

    def said(self) -> str | None:
        """The text of the response being created, or None: the backend generates it (:class:`Generate`).
        Called once per accepted ``response.create``."""
        ...


class ScriptedLines:
    """A scenario's lines, in order (see :class:`~voicecoach.server.scenario.ScenarioCursor`); the energy VAD."""

    def __init__(self, cursor: ScenarioCursor) -> None:
        self.cursor = cursor

    def turn_detector(self, settings: VadSettings) -> TurnDetector:
        return EnergyVad(settings)

    def heard(self, *, them: bool) -> str:
        return self.cursor.next_them_utterance() if them else self.cursor.next_utterance()

    def said(self) -> str:
        return self.cursor.next_response()


class LiveLines:
    """Lines a backend makes from the audio itself: nothing is known at once."""

    def __init__(self, detector: TurnDetectorFactory) -> None:
        self._detector = detector

    def turn_detector(self, settings: VadSettings) -> TurnDetector:
        return self._detector(settings)

    def heard(self, *, them: bool) -> None:
        return None

    def said(self) -> None:
        return None


def lines_of(source: Scenario | ScenarioCursor | SessionLines) -> SessionLines:
    """A session's lines from a scenario (a fresh cursor), a cursor (shared), or lines as they are."""
    if isinstance(source, Scenario):
        return ScriptedLines(ScenarioCursor(source))
    if isinstance(source, ScenarioCursor):
        return ScriptedLines(source)
    return source


@dataclass(frozen=True)
class ReplyUsage:
    """Token counts a language model reported for one reply (its own tokenizer's)."""

    input_tokens: int
    output_tokens: int


class ReplySink(Protocol):
    """Where :meth:`Backend.generate` reports a reply as it is made (the pump's inbox). Called on the loop."""

    def sentence(self, text: str, pcm: Pcm) -> None:
        """One sentence of an audio reply, with its speech (48 kHz mono)."""

    def text(self, delta: str) -> None:
        """One piece of a text reply."""


class Backend(Protocol):
    name: str  # "scripted" | "local"

    async def start(self) -> None:
        """Load what the backend needs and check what it reaches; raise a one-line VoicecoachError if anything is
        missing (a model, a runtime package, an endpoint)."""
        ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        """One line saying what the backend is made of (``voicecoach serve`` and ``run --local`` print it)."""
        ...

    def lines(self) -> SessionLines:
        """The lines of a new session."""
        ...

    async def transcribe(self, job: Transcribe) -> str:
        """The text of a committed turn (asked only when the lines said None). Raises VoicecoachError."""
        ...

    async def generate(self, request: ReplyRequest, sink: ReplySink) -> ReplyUsage | None:
        """Make a reply, reporting it to ``sink`` as it comes; returns the model's token counts when it reported
        them. Cancelling the task stops the reply at once (the model's stream is closed). Raises VoicecoachError."""
        ...

    async def speak(self, text: str, voice: str) -> Pcm:
        """``text`` spoken (48 kHz mono), without blocking the loop. ``voice``: the session's voice name."""
        ...


class ScriptedBackend:
    """The scenario's lines and the espeak-ng/synthetic voice.

    ``scenario``: read at :meth:`start` (a scenario file fails there, after the voice check), e.g.
    ``ServerConfig.resolved_scenario``. ``spans_calls``: every call shares one cursor, so a client that
    reconnects mid-meeting gets the next lines instead of the first ones again."""

    name = "scripted"

    def __init__(
        self, scenario: Callable[[], Scenario] = default_scenario, *, voice: VoiceMode, spans_calls: bool = False
    ) -> None:
        self._source = scenario
        self._voice: VoiceMode = voice
        self._spans_calls = spans_calls
        self.scenario: Scenario | None = None
        self._shared: ScenarioCursor | None = None

    async def start(self) -> None:
        check_voice_mode(self._voice)
        self.scenario = self._source()
        if self._spans_calls:
            self._shared = ScenarioCursor(self.scenario)

    async def close(self) -> None:
        return None

    def describe(self) -> str:
        return f"scripted (a scenario's lines; voice {self._voice})"

    def lines(self) -> SessionLines:
        assert self.scenario is not None, "start() first"
        return ScriptedLines(self._shared or ScenarioCursor(self.scenario))

    async def transcribe(self, job: Transcribe) -> str:
        raise RuntimeError("a scripted session's transcripts come from its scenario")  # never asked: heard() answers

    async def generate(self, request: ReplyRequest, sink: ReplySink) -> ReplyUsage | None:
        raise RuntimeError("a scripted session's replies come from its scenario")  # never asked: said() answers

    async def speak(self, text: str, voice: str) -> Pcm:
        return await render_speech(text, self._voice)
