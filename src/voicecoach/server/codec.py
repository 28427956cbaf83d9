"""Decoding of the client's base64 audio payloads and encoding of item audio for ``conversation.item.retrieved``.

Over WebRTC, audio normally travels on RTP; base64 audio only appears in ``input_audio_buffer.append``,
``input_audio`` content parts and retrieved items. Their format is the session's ``audio.input.format``:
``audio/pcm`` (16-bit little-endian, 24 kHz mono), ``audio/pcmu`` or ``audio/pcma`` (G.711 at 8 kHz).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio.frames import WIRE_RATE, Pcm, resample
from .schema import WireError

PCM_RATE = 24_000
G711_RATE = 8_000


def _ulaw_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW = _ulaw_table()
_ALAW = _alaw_table()


def decode_audio(data: str, audio_format: dict[str, Any], param: str) -> Pcm:
    """Base64 audio in the session's input format → 48 kHz mono PCM. Raises WireError on bad base64."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError("invalid_value", f"Invalid '{param}': the audio is not valid base64.", param) from exc
    kind = audio_format.get("type", "audio/pcm")
    if kind == "audio/pcmu":
        return resample(_ULAW[np.frombuffer(raw, dtype=np.uint8)], G711_RATE, WIRE_RATE)
    if kind == "audio/pcma":
        return resample(_ALAW[np.frombuffer(raw, dtype=np.uint8)], G711_RATE, WIRE_RATE)
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)
    if samples.size == 0:
        return samples
    return resample(samples, int(audio_format.get("rate", PCM_RATE)), WIRE_RATE)


def encode_pcm24(pcm: Pcm) -> str:
    """48 kHz mono PCM → base64 of 24 kHz 16-bit little-endian PCM (the API's ``audio/pcm``)."""
    if pcm.size == 0:
        return ""
    return base64.b64encode(resample(pcm, WIRE_RATE, PCM_RATE).astype("<i2").tobytes()).decode("ascii")
