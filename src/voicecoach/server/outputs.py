"""What the sans-I/O session core asks its driver to do.

The core (:class:`~voicecoach.server.session.RealtimeSession`) never touches a socket, a track or a clock; each
of its methods returns a list of these outputs, in order, and the driver (``call.py`` over WebRTC,
``websocket.py`` over a WebSocket, or a test) carries them out in that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
class CloseCall:
    """End the call (after the events before it have been sent)."""

    reason: str


Output = SendEvent | PlayAudio | ClearAudio | Synthesize | CloseCall
