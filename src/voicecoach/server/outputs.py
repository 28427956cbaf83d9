"""What the sans-I/O session core asks its driver to do.

The core (:class:`~voicecoach.server.session.RealtimeSession`) never touches a socket, a track or a clock; each
of its methods returns a list of these outputs, in order, and the driver (``call.py`` over WebRTC,
``websocket.py`` over a WebSocket, or a test) carries them out in that order.

Three of them hand work to the server's backend (:mod:`~voicecoach.server.backend`), which answers later through
the session: :class:`Synthesize` (how it sounds: ``speech_ready``), and, with a live backend whose lines are not
scripted, :class:`Transcribe` (what it hears: ``transcription_result``) and :class:`Generate` (what it says:
``reply_sentence`` / ``reply_text`` / ``reply_end``), which :class:`StopGenerating` cancels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..audio.frames import Pcm


@dataclass(frozen=True)
class SendEvent:
    """Send this server event (a JSON-ready dict): on the ``oai-events`` data channel, or as a WebSocket text frame."""

    event: dict[str, Any]


@dataclass(frozen=True)
class PlayAudio:
    """Append 48 kHz mono PCM of ``response_id`` to the outgoing audio track's queue (WebRTC only: on a WebSocket
    the core sends ``response.output_audio.delta`` events instead)."""

    response_id: str
    pcm: Pcm


@dataclass(frozen=True)
class ClearAudio:
    """Drop everything queued on the outgoing track (silence within one frame)."""


@dataclass(frozen=True)
class Synthesize:
    """Render ``text`` as speech and hand it back with ``RealtimeSession.speech_ready(response_id, pcm, now)``."""

    response_id: str
    text: str
    voice: str


@dataclass(frozen=True)
class Transcribe:
    """Transcribe the committed turn ``item_id`` (48 kHz mono ``pcm``) and hand the text back with
    ``RealtimeSession.transcription_result(item_id, text, now)`` (or ``transcription_failed``).

    ``language`` and ``prompt``: the session's ``audio.input.transcription`` settings of that moment."""

    item_id: str
    pcm: Pcm
    language: str | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class ReplyRequest:
    """What a response asks the backend's language model: the mapping of ``response.create`` (merged with the
    session) onto a chat request, before any wire-to-chat translation.

    ``items``: the response's input as wire items (the conversation for an in-band response, its ``input``
    for an out-of-band one), item references resolved to the items they name. ``max_output_tokens``: the
    response's budget (an int, or ``"inf"``); it counts text and audio tokens both, so the text alone never
    gets more than that."""

    instructions: str | None
    items: list[dict[str, Any]]
    max_output_tokens: int | str
    modality: Literal["audio", "text"]
    voice: str


@dataclass(frozen=True)
class Generate:
    """Generate the text of response ``response_id`` and report it back as it comes: for audio, one spoken
    sentence at a time (``RealtimeSession.reply_sentence(response_id, text, pcm, now)``), for text each delta
    (``reply_text``); then ``reply_end`` once (with the language model's usage, or an error)."""

    response_id: str
    request: ReplyRequest


@dataclass(frozen=True)
class StopGenerating:
    """Stop the generation of ``response_id`` now (cancelled, or over its budget): close the language model's
    stream and drop any speech still being rendered. Nothing more of it is reported."""

    response_id: str


@dataclass(frozen=True)
class CloseCall:
    """End the call (after the events before it have been sent)."""

    reason: str


Output = SendEvent | PlayAudio | ClearAudio | Synthesize | Transcribe | Generate | StopGenerating | CloseCall
