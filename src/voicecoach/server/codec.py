"""Base64 audio on the wire: the client's payloads in, the model's audio out.

Over WebRTC, audio normally travels on RTP; base64 audio appears in ``input_audio_buffer.append``,
``input_audio`` content parts and retrieved items. Over WebSocket all audio is base64: the client's microphone
in ``input_audio_buffer.append`` (decoded as one stream by :class:`InputDecoder`, so that 20 ms chunks join
without clicks) and the model's voice in ``response.output_audio.delta`` (:func:`encode_output`). The formats
are the session's ``audio.input.format`` / ``audio.output.format``: ``audio/pcm`` (16-bit little-endian,
24 kHz mono), ``audio/pcmu`` or ``audio/pcma`` (G.711 at 8 kHz).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio.frames import WIRE_RATE, Pcm, Resampler, resample, silence
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


# Encoding is the nearest G.711 code for each 16-bit value (a table over all 65536 values, built once).
def _encode_table(decode: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    order = np.argsort(decode, kind="stable")
    values = decode[order].astype(np.int32)
    wanted = np.arange(-32768, 32768, dtype=np.int32)
    right = np.clip(np.searchsorted(values, wanted), 1, values.size - 1)
    left = right - 1
    nearest = np.where(wanted - values[left] <= values[right] - wanted, left, right)
    return np.asarray(order[nearest], dtype=np.uint8)


_ULAW_ENCODE = _encode_table(_ULAW)
_ALAW_ENCODE = _encode_table(_ALAW)


def _b64decode(data: str, param: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError("invalid_value", f"Invalid '{param}': the audio is not valid base64.", param) from exc


def _samples(raw: bytes, audio_format: dict[str, Any]) -> tuple[Pcm, int]:
    """The 16-bit samples in ``raw`` and their rate, per the format."""
    kind = audio_format.get("type", "audio/pcm")
    if kind == "audio/pcmu":
        return _ULAW[np.frombuffer(raw, dtype=np.uint8)], G711_RATE
    if kind == "audio/pcma":
        return _ALAW[np.frombuffer(raw, dtype=np.uint8)], G711_RATE
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)
    return samples, int(audio_format.get("rate", PCM_RATE))


def decode_audio(data: str, audio_format: dict[str, Any], param: str) -> Pcm:
    """Base64 audio in the session's input format → 48 kHz mono PCM. Raises WireError on bad base64."""
    samples, rate = _samples(_b64decode(data, param), audio_format)
    if samples.size == 0:
        return samples
    return resample(samples, rate, WIRE_RATE)


class InputDecoder:
    """``input_audio_buffer.append`` payloads → 48 kHz mono PCM, as one stream.

    One resampler carries its state from append to append (resampling each 20 ms chunk on its own would pad
    every chunk's edge with silence). Its output lags the input by the filter's delay (under 1 ms);
    :meth:`flush` returns that tail, and a commit calls it so that everything appended is committed.
    """

    def __init__(self) -> None:
        self._resampler: Resampler | None = None

    def decode(self, data: str, audio_format: dict[str, Any], param: str) -> Pcm:
        samples, rate = _samples(_b64decode(data, param), audio_format)
        if samples.size == 0:
            return samples
        if self._resampler is None or self._resampler.in_rate != rate:
            self._resampler = Resampler(rate, 1, WIRE_RATE, 1)
        return self._resampler.process(samples)

    def flush(self) -> Pcm:
        """The tail still inside the resampler; the next append starts a fresh stream."""
        resampler, self._resampler = self._resampler, None
        return resampler.flush() if resampler is not None else silence(0)


def encode_output(pcm: Pcm, audio_format: dict[str, Any]) -> tuple[bytes, int, int]:
    """48 kHz mono PCM → bytes in the session's output format: (bytes, bytes per second, bytes per sample).

    A response is encoded whole, once, so that its ``response.output_audio.delta`` payloads are slices of one
    clean stream (no resampler edge in each delta)."""
    kind = audio_format.get("type", "audio/pcm")
    if kind in ("audio/pcmu", "audio/pcma"):
        table = _ULAW_ENCODE if kind == "audio/pcmu" else _ALAW_ENCODE
        samples = resample(pcm, WIRE_RATE, G711_RATE) if pcm.size else pcm
        return table[samples.astype(np.int32) + 32768].tobytes(), G711_RATE, 1
    rate = int(audio_format.get("rate", PCM_RATE))
    samples = resample(pcm, WIRE_RATE, rate) if pcm.size else pcm
    return samples.astype("<i2").tobytes(), rate * 2, 2


def encode_pcm24(pcm: Pcm) -> str:
    """48 kHz mono PCM → base64 of 24 kHz 16-bit little-endian PCM (the API's ``audio/pcm``)."""
    if pcm.size == 0:
        return ""
    return base64.b64encode(resample(pcm, WIRE_RATE, PCM_RATE).astype("<i2").tobytes()).decode("ascii")
