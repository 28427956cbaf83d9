"""What the local server knows of OpenAI's catalogue: the Realtime and transcription models, and the voices.

A client that asks for a model or a voice the real API does not have gets the real API's error here too, so
that a typo in a setting fails in the tests and the demo as it would against OpenAI (realtime-protocol.md
§1.1 for the voices, §8 for ``invalid_model`` / ``missing_model``). The lists are data copied from the openai
SDK's ``Literal`` types (the SDK is a test-only dependency of this package).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .schema import Obj, Spec, Str, WireError, invalid_type, invalid_value

# The SDK's RealtimeSessionCreateRequestParam.model literals (openai 3.54.0).
REALTIME_MODELS = (
    "gpt-realtime",
    "gpt-realtime-1.5",
    "gpt-realtime-2",
    "gpt-realtime-2.1",
    "gpt-realtime-2.1-mini",
    "gpt-realtime-2025-08-28",
    "gpt-4o-realtime-preview",
    "gpt-4o-realtime-preview-2024-10-01",
    "gpt-4o-realtime-preview-2024-12-17",
    "gpt-4o-realtime-preview-2025-06-03",
    "gpt-4o-mini-realtime-preview",
    "gpt-4o-mini-realtime-preview-2024-12-17",
    "gpt-realtime-mini",
    "gpt-realtime-mini-2025-10-06",
    "gpt-realtime-mini-2025-12-15",
    "gpt-audio-1.5",
    "gpt-audio-mini",
    "gpt-audio-mini-2025-10-06",
    "gpt-audio-mini-2025-12-15",
)
# The SDK's AudioTranscription.model literals (openai 3.57.0): what ``audio.input.transcription.model`` accepts.
TRANSCRIPTION_MODELS = (
    "whisper-1",
    "gpt-transcribe",
    "gpt-live-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-4o-transcribe",
    "gpt-4o-transcribe-diarize",
    "gpt-realtime-whisper",
)
# Transcription models priced per minute of audio (realtime-protocol.md §9; next-wave.md §2.3): their
# ``…transcription.completed`` usage is ``{"type": "duration", "seconds"}`` (the SDK's
# UsageTranscriptTextUsageDuration), the others report tokens. Which model reports which is UNCONFIRMED beyond
# the documented token example for gpt-4o-mini-transcribe (realtime-protocol.md §4.3).
DURATION_BILLED_MODELS = ("whisper-1", "gpt-live-transcribe", "gpt-realtime-whisper")
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")

_CUSTOM_VOICE = Obj({"id": Str()}, required=("id",))

# A dated snapshot of a known model (``gpt-realtime-2-2026-01-15``): OpenAI publishes new snapshots faster than
# the SDK's list grows, and a client pinned to one must keep working against this server.
_SNAPSHOT = re.compile(r"(?P<base>.+)-\d{4}-\d{2}-\d{2}")


def is_realtime_model(name: str) -> bool:
    return _known(name, REALTIME_MODELS)


def _known(name: str, models: tuple[str, ...]) -> bool:
    if name in models:
        return True
    match = _SNAPSHOT.fullmatch(name)
    return match is not None and match["base"] in models


def is_transcription_model(name: str) -> bool:
    return _known(name, TRANSCRIPTION_MODELS)


def usage_kind(transcription_model: str) -> str:
    """``"duration"`` or ``"tokens"``: how ``…transcription.completed`` reports the usage of this model."""
    match = _SNAPSHOT.fullmatch(transcription_model)
    base = match["base"] if match is not None else transcription_model
    return "duration" if base in DURATION_BILLED_MODELS else "tokens"


def transcription_model_as_session_model(model: str, param: str | None) -> WireError:
    """A transcription model given as the session model (next-wave.md §2.1, the real message; the code is
    UNCONFIRMED, ``invalid_model`` being the code of every other bad session model)."""
    return WireError(
        "invalid_model",
        f"Model {model} is a transcription model and cannot be used as the realtime session model. "
        "Pass this transcription model as audio.input.transcription.model instead.",
        param,
    )


def invalid_transcription_model(model: str, param: str) -> WireError:
    """An unknown ``audio.input.transcription.model``. UNCONFIRMED: realtime-protocol.md does not record the real
    answer; this is its documented enum pattern (§8 "bad enum": ``invalid_value`` listing the supported values)."""
    return invalid_value(param, model, TRANSCRIPTION_MODELS)


def invalid_model(model: str, param: str | None) -> WireError:
    """The real API's answer to a model it does not serve in realtime mode (§8, ``invalid_model``)."""
    return WireError(
        "invalid_model",
        f'Model "{model}" is not supported in realtime mode. Supported models are listed at '
        "https://platform.openai.com/docs/models.",
        param,
    )


def missing_model(param: str | None) -> WireError:
    """The real API's answer to an empty model (§8, ``missing_model``)."""
    return WireError("missing_model", "You must provide a model parameter, for example 'gpt-realtime-1.5'.", param)


@dataclass
class Model(Spec):
    """``session.model``: a string naming a Realtime model."""

    def check(self, value: Any, param: str) -> Any:
        name = Str().check(value, param)
        if not name.strip():
            raise missing_model(param)
        if is_transcription_model(name):
            raise transcription_model_as_session_model(name, param)
        if not is_realtime_model(name):
            raise invalid_model(name, param)
        return name


@dataclass
class TranscriptionModel(Spec):
    """``audio.input.transcription.model``: a string naming a transcription model."""

    def check(self, value: Any, param: str) -> Any:
        name = Str().check(value, param)
        if not is_transcription_model(name):
            raise invalid_transcription_model(name, param)
        return name


@dataclass
class Voice(Spec):
    """``audio.output.voice``: a built-in voice name, or ``{"id": "voice_…"}`` for a custom voice (§1.1)."""

    def check(self, value: Any, param: str) -> Any:
        if isinstance(value, dict):
            return _CUSTOM_VOICE.check(value, param)
        if not isinstance(value, str):
            raise invalid_type(param, "a string", value)
        if value not in VOICES:
            raise invalid_value(param, value, VOICES)
        return value
