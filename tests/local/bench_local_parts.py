"""Figures for the local parts on this machine (not a test): ``python -m tests.local.bench_local_parts``.

STT load and per-utterance time, RTF and WER (espeak-ng en-us, the study's 10 sentences); VAD boundary errors
and RTF; LLM-stream cancel latency against the stand-in server; TTS time to the first chunk.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import numpy as np
from tests.local.chat_stub import ChatStub, StubConfig
from tests.local.speech import SENTENCES, espeak, padded, word_errors
from tests.local.test_vad import THREE, run, utterances

from voicecoach.local.llm import ChatClient
from voicecoach.local.stt import BUNDLED_MODEL, Transcriber
from voicecoach.local.tts import EspeakVoice, sentences, speak
from voicecoach.local.vad import SileroVad
from voicecoach.server.vad import VadSettings


def stt() -> None:
    loads = []
    for _ in range(3):
        started = time.perf_counter()
        model = Transcriber.load(BUNDLED_MODEL)
        loads.append(time.perf_counter() - started)
    clips = [padded(espeak(s), 16_000) for s in SENTENCES]
    model.transcribe(clips[0])  # warm-up
    times, errors, words = [], 0, 0
    for sentence, clip in zip(SENTENCES, clips, strict=True):
        started = time.perf_counter()
        text = model.transcribe(clip)
        times.append(time.perf_counter() - started)
        e, n = word_errors(sentence, text)
        errors, words = errors + e, words + n
    audio_s = sum(c.size for c in clips) / 16_000
    print(f"stt load: {min(loads):.2f}-{max(loads):.2f} s (3 loads, warm disk cache)")
    print(
        f"stt per utterance ({audio_s / len(clips):.1f} s of audio incl. 0.8 s padding): "
        f"{min(times):.2f}-{max(times):.2f} s, median {statistics.median(times):.2f} s; RTF {sum(times) / audio_s:.3f}"
    )
    print(f"stt WER espeak-ng en-us -s150: {errors}/{words} = {errors / words:.1%}")


def vad() -> None:
    for noise in (0.0, 300.0):
        rec = utterances([1.0, 1.2, 1.5], THREE, noise)
        settings = VadSettings(0.5, 300, 500)
        started = time.perf_counter()
        events = run(SileroVad(settings), rec.audio)
        elapsed = time.perf_counter() - started
        onsets = [e.ms + 300 - t[0] for e, t in zip(events[::2], rec.truth, strict=True)]
        ends = [e.ms - 500 - t[1] for e, t in zip(events[1::2], rec.truth, strict=True)]
        print(
            f"vad noise sigma={noise:g}: onset error {onsets} ms, end error {ends} ms, "
            f"RTF {elapsed / (rec.audio.size / 48_000):.4f}"
        )


async def cancel_latency(trials: int = 20) -> None:
    figures = []
    config = StubConfig(reply=[f"w{i} " for i in range(500)], token_delay_s=0.01)
    for _ in range(trials):
        async with ChatStub(config) as stub, ChatClient(stub.url, "stub-model") as client:
            first = asyncio.Event()

            async def consume(client: ChatClient = client, first: asyncio.Event = first) -> None:
                async with client.stream([{"role": "user", "content": "hi"}]) as reply:
                    async for _ in reply:
                        first.set()

            task = asyncio.create_task(consume())
            await first.wait()
            await asyncio.sleep(0.05)
            cancelled = time.monotonic()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await stub.disconnected.wait()
            assert stub.record.disconnected_at is not None
            figures.append((stub.record.disconnected_at - cancelled) * 1000)
    print(
        f"llm cancel -> server sees the disconnect: median {statistics.median(figures):.2f} ms, "
        f"max {max(figures):.2f} ms ({trials} trials)"
    )


async def tts_first_chunk() -> None:
    async def deltas() -> AsyncIterator[str]:
        for word in "Ask about the scope first. Then confirm the dates, and thank them.".split(" "):
            yield word + " "

    voice = EspeakVoice()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        async for pcm in speak(sentences(deltas()), voice):
            times.append(time.perf_counter() - started)
            assert pcm.dtype == np.int16
            break
    print(f"tts espeak first chunk (7-word sentence, 48 kHz): median {statistics.median(times) * 1000:.0f} ms")


if __name__ == "__main__":
    stt()
    vad()
    asyncio.run(cancel_latency())
    asyncio.run(tts_first_chunk())
