"""The pure half of the WebSocket transport: its URL, its audio formats and payloads, and what a refusal means.

No I/O here: :mod:`voicecoach.transport.websocket` does the connecting and calls these.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np

from ..audio.frames import Pcm
from ..errors import AuthError, ConnectError, RequestRejected, ServerUnavailable
from ..redact import redact_text
from .signaling import raise_for_status

log = logging.getLogger(__name__)

WS_RATE = 24_000  # the Realtime API's PCM rate; the GA server rejects lower ones ("Expected a value >= 24000")
PCM_FORMAT = {"type": "audio/pcm", "rate": WS_RATE}
AUTH_CLOSE_CODE = 3000  # OpenAI's close code after invalid_api_key (realtime-protocol.md §8)
AUTH_ERRORS = frozenset({"invalid_api_key"})
AUTH_HINT = "check OPENAI_API_KEY (or, with --token-url, the token server's key)"


def realtime_url(base_url: str, model: str) -> str:
    """``{base_url}/realtime?model=M`` with the WebSocket scheme of ``base_url``'s (http → ws, https → wss)."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, f"{parts.path}/realtime", f"model={quote(model, safe='')}", ""))


def transcription_url(base_url: str) -> str:
    """``{base_url}/realtime?intent=transcription`` (no model: a transcription session names its model in
    ``audio.input.transcription``), with the WebSocket scheme of ``base_url``'s."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, f"{parts.path}/realtime", "intent=transcription", ""))


def auth_message(host: str) -> str:
    """The one line for a refused key, the same for an HTTP 401 and for ``invalid_api_key`` + close 3000."""
    return f"{host} refused the key (invalid, expired or revoked); {AUTH_HINT}"


def with_pcm_formats(event: dict[str, Any]) -> dict[str, Any]:
    """``session.update`` with 24 kHz PCM both ways unless it names formats itself (a copy; the input is kept)."""
    session = dict(event.get("session") or {})
    audio = dict(session.get("audio") or {})
    # A transcription session has input audio only: an ``output`` there is an unknown parameter.
    sides = ("input",) if session.get("type") == "transcription" else ("input", "output")
    for side in sides:
        part = dict(audio.get(side) or {})
        part.setdefault("format", dict(PCM_FORMAT))
        audio[side] = part
    session["audio"] = audio
    return {**event, "session": session}


def decode_pcm(payload: Any) -> Pcm | None:
    if not isinstance(payload, str):
        return None
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        log.debug("dropped an audio delta that is not base64")
        return None
    usable = len(raw) // 2 * 2  # a torn sample cannot be played
    return np.frombuffer(raw[:usable], dtype="<i2").astype(np.int16)


def error_of(text: str) -> dict[str, Any] | None:
    """The ``error`` object of an ``error`` event, else None."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("type") == "error":
        error = data.get("error")
        return error if isinstance(error, dict) else {}
    return None


def session_refused(error: dict[str, Any], close_code: int | None, host: str) -> ConnectError:
    code, message = error.get("code"), redact_text(str(error.get("message") or ""))
    if code in AUTH_ERRORS or (code is None and close_code == AUTH_CLOSE_CODE):
        return AuthError(auth_message(host), status=401)
    said = f": {message}" if message else ""
    return RequestRejected(f"{host} refused the session ({code or 'error'}){said}")


def upgrade_refused(status: int, url: str) -> ConnectError:
    """The error for an upgrade answered with ``status`` instead of 101."""
    host = urlsplit(url).netloc
    if status in (401, 403):
        return AuthError(auth_message(host), status=status)
    if status == 404:
        return RequestRejected(
            f"{redact_text(url)} does not exist (HTTP 404); check that --base-url (or OPENAI_BASE_URL) is a "
            "Realtime API ending in /v1",
            status=404,
        )
    if 200 <= status < 300:
        return ServerUnavailable(
            f"{host} answered the WebSocket upgrade with HTTP {status}; is --base-url a Realtime API?", status=status
        )
    try:
        raise_for_status(status, "", "WebSocket upgrade", auth_hint=AUTH_HINT)
    except ConnectError as exc:
        return exc
    return ServerUnavailable(f"the WebSocket upgrade to {host} failed (HTTP {status})", status=status)
