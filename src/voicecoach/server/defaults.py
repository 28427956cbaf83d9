"""The effective session: the server's defaults, and how a validated update merges into them.

A real ``session.created`` shows every field with its effective value (realtime-protocol.md §4.3); updates
change only the fields they carry (§3.1), with the server's defaults filled into replaced sub-objects.
"""

from __future__ import annotations

import copy
from typing import Any

DEFAULT_MODEL = "gpt-realtime"
DEFAULT_INSTRUCTIONS = "You are a helpful, concise voice assistant. Speak clearly and keep your answers short."


def default_turn_detection(kind: str) -> dict[str, Any]:
    if kind == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True}
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


def default_session(session_id: str, model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """The session a call starts with when its token configured nothing (shape of a real session.created)."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": 0,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": default_turn_detection("server_vad"),
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
        "include": None,
    }


TRANSCRIPTION_OBJECT = "realtime.transcription_session"


def default_transcription_session(session_id: str) -> dict[str, Any]:
    """The session a transcription-only call (``?intent=transcription``) starts with.

    UNCONFIRMED: realtime-protocol.md records no real transcription ``session.created``. The shape is the SDK's
    RealtimeTranscriptionSessionCreateResponse (``id``, ``object``, ``type``, ``audio.input``, ``expires_at``,
    ``include``); the ``object`` string is the one third-party fakes use. Transcription is off until the
    client names a model (off by default, §7.2); turn detection is server VAD, without the response settings
    a session that never responds has no use for."""
    turn_detection = default_turn_detection("server_vad")
    del turn_detection["create_response"], turn_detection["interrupt_response"]
    return {
        "type": "transcription",
        "object": TRANSCRIPTION_OBJECT,
        "id": session_id,
        "expires_at": 0,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": turn_detection,
            }
        },
        "include": None,
    }


def merge_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """The effective session after applying a *validated* update: only present fields change.

    ``audio``, ``audio.input`` and ``audio.output`` merge key by key; every other value (a format, a
    turn_detection, the tools list …) is replaced whole, with the server's defaults filled in where the real
    server fills them. ``model`` cannot change once a session exists, so it is ignored here.
    """
    merged = copy.deepcopy(current)
    for key, value in update.items():
        if key in ("type", "model"):
            continue
        if key == "audio":
            for side in ("input", "output"):
                if side not in merged["audio"]:  # a transcription session has input audio only
                    continue
                for sub_key, sub_value in (value.get(side) or {}).items():
                    responds = merged["type"] != "transcription"
                    merged["audio"][side][sub_key] = _fill(sub_key, copy.deepcopy(sub_value), responds)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _fill(key: str, value: Any, responds: bool) -> Any:
    """``value`` with the server's defaults; ``responds``: False in a transcription session, whose turn detection
    gets no response defaults (only what the client itself set)."""
    if value is None:
        return None
    if key == "turn_detection":
        defaults = default_turn_detection(value["type"])
        if not responds:
            del defaults["create_response"], defaults["interrupt_response"]
        return {**defaults, **value}
    if key == "format":
        return fill_format(value)
    if key == "transcription":
        return {"model": "whisper-1", "language": None, "prompt": None, **value}
    return value


def fill_format(value: dict[str, Any]) -> dict[str, Any]:
    """An audio format with the server's defaults: ``type`` audio/pcm, and ``rate`` 24000 for audio/pcm."""
    value = {"type": "audio/pcm", **value}
    return {"type": "audio/pcm", "rate": 24000, **value} if value["type"] == "audio/pcm" else value


def session_from_request(session_id: str, requested: dict[str, Any]) -> dict[str, Any]:
    """The effective session for a validated ``client_secrets``/``calls`` session object (model included)."""
    if requested["type"] == "transcription":
        return merge_session(default_transcription_session(session_id), requested)
    base = default_session(session_id, requested.get("model", DEFAULT_MODEL))
    return merge_session(base, requested)
