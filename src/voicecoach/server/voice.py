"""Speech audio for the local server: the coach's voice, and test/demo *input* speech.

Two renderers:

* espeak-ng (``espeak-ng -v en-us -s 170 --stdout``, text on stdin) when it is installed: real, intelligible
  speech, a few tens of milliseconds per sentence;
* :func:`synth_speech`: a deterministic voice-like signal (a harmonic tone at 120-220 Hz per word with a
  syllable-rate envelope, ~0.4 s per word, short gaps between words). It is not words, but it has speech's
  level, rhythm and spectrum, so VAD, Opus and envelope tests behave as with speech.

The server renders off the event loop (:func:`render_speech` runs espeak in a thread);
:func:`speech_pcm` is the blocking variant for tests and scripts.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import struct
import subprocess
import zlib
from typing import Literal

import numpy as np

from ..audio.frames import WIRE_RATE, Pcm, resample, silence
from ..errors import ConfigError

log = logging.getLogger(__name__)

VoiceMode = Literal["auto", "espeak", "synth"]
WORD_SECONDS = 0.4
_VOICED_SECONDS = 0.32  # the rest of a word's slot is a gap (well under the VAD's default 200 ms of silence)
_PUNCTUATION_PAUSE = 0.06
_PEAK = 0.3
_ESPEAK_ARGS = ("-v", "en-us", "-s", "170", "--stdout")


def synth_speech(text: str, rate: int = WIRE_RATE) -> Pcm:
    """A deterministic speech-like rendering of ``text`` (mono int16 at ``rate``); empty text gives no samples."""
    words = re.findall(r"[^\s]+", text)
    chunks: list[Pcm] = []
    for word in words:
        chunks.append(_synth_word(word, rate))
        gap = WORD_SECONDS - _VOICED_SECONDS + (_PUNCTUATION_PAUSE if word[-1] in ".,;:!?" else 0.0)
        chunks.append(silence(int(gap * rate)))
    return np.concatenate(chunks) if chunks else silence(0)


def _synth_word(word: str, rate: int) -> Pcm:
    seed = zlib.crc32(word.lower().encode())
    n = int(_VOICED_SECONDS * rate)
    t = np.arange(n, dtype=np.float64) / rate
    f0 = 120.0 + seed % 100  # a stable pitch per word, in the range of an adult voice
    glide = 1.0 + 0.08 * np.sin(np.pi * t / _VOICED_SECONDS)  # intonation
    phase = 2 * np.pi * np.cumsum(f0 * glide) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    syllables = max(1, len(re.findall(r"[aeiouy]+", word.lower())))
    swell = np.sin(np.pi * t / _VOICED_SECONDS)
    envelope = swell * (0.55 + 0.45 * np.abs(np.sin(np.pi * syllables * t / _VOICED_SECONDS)))
    signal = tone / np.max(np.abs(tone)) * envelope * _PEAK
    return np.asarray(np.round(signal * 32767), dtype=np.int16)


def espeak_path() -> str | None:
    return shutil.which("espeak-ng")


def parse_wav(data: bytes) -> tuple[Pcm, int]:
    """Mono/stereo 16-bit PCM WAV bytes → (mono PCM, rate).

    espeak-ng writes a streaming header whose size fields are placeholders, so sizes are clamped to the data
    actually present instead of trusted (the ``wave`` module would believe them).
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos, rate, channels, bits = 12, 0, 1, 16
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
        elif chunk_id == b"data":
            if not rate or bits != 16:
                raise ValueError(f"unsupported WAV format ({bits}-bit, rate {rate})")
            usable = len(body) // (2 * channels) * 2 * channels
            pcm = np.frombuffer(body[:usable], dtype="<i2").astype(np.int16).reshape(-1, channels)
            mono = pcm[:, 0] if channels == 1 else np.asarray(pcm.mean(axis=1), dtype=np.int16)
            return np.ascontiguousarray(mono), rate
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk in the WAV file")


def _from_espeak(wav: bytes, rate: int) -> Pcm:
    pcm, source_rate = parse_wav(wav)
    return pcm if source_rate == rate else resample(pcm, source_rate, rate)


def speech_pcm(text: str, rate: int = WIRE_RATE) -> Pcm:
    """``text`` spoken by espeak-ng when installed, else :func:`synth_speech`. Blocking: not for the event loop."""
    exe = espeak_path()
    if exe is None or not text.strip():
        return synth_speech(text, rate)
    result = subprocess.run([exe, *_ESPEAK_ARGS], input=text.encode(), capture_output=True, check=False, timeout=30)
    if result.returncode != 0:
        log.debug("espeak-ng failed (%s); using the synthetic voice", result.returncode)
        return synth_speech(text, rate)
    return _from_espeak(result.stdout, rate)


def check_voice_mode(mode: VoiceMode) -> None:
    """Fail early (at server start) when espeak was asked for and is missing."""
    if mode == "espeak" and espeak_path() is None:
        raise ConfigError("voice 'espeak' needs espeak-ng: apt-get install -y espeak-ng, or use voice 'synth'")


async def render_speech(text: str, mode: VoiceMode = "auto", rate: int = WIRE_RATE) -> Pcm:
    """Render ``text`` without blocking the loop, in a thread: espeak-ng, or the synthetic voice.

    A thread, not an asyncio subprocess: asyncio's child watcher warns ("Unknown child process pid") when
    something else in the process (the sound server's client library, a plain ``subprocess`` call) reaps a child
    first, and that warning would land on the user's terminal. A cancelled response's rendering finishes in the
    background (espeak-ng takes well under a second) and is dropped.
    """
    if mode == "synth" or not text.strip():
        # Even the synthetic voice: a long reply takes ~80 ms, enough to starve the call's outgoing audio.
        return await asyncio.to_thread(synth_speech, text, rate)
    return await asyncio.to_thread(speech_pcm, text, rate)
