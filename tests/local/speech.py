"""Test speech for the local parts: espeak-ng ``en-us`` renderings and the word error rate of a transcript.

The sentences and the normalisation are offline-backend.md §1's, so figures compare with the study's:
lowercase, punctuation removed, digits spelled out ("2" counts as "two").
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np

from voicecoach.audio.frames import Pcm, resample, silence
from voicecoach.server.voice import parse_wav

SENTENCES = (
    "what is two plus two good question",
    "hello can you hear me",
    "the quick brown fox jumps over the lazy dog",
    "i would like to practice my presentation skills today",
    "please give me a hint about the next slide",
    "thank you very much for your help",
    "let me think about that for a moment",
    "my name is john and i am a software engineer",
    "could you speak a little more slowly",
    "i am nervous about my job interview tomorrow",
)

_DIGITS = "zero one two three four five six seven eight nine ten eleven twelve".split()


def espeak(text: str, rate: int = 16_000, speed: int = 150) -> Pcm:
    """``text`` spoken by ``espeak-ng -v en-us -s <speed>`` (the study's voice), mono int16 at ``rate``."""
    exe = shutil.which("espeak-ng")
    assert exe is not None, "espeak-ng is needed for these tests: apt-get install -y espeak-ng"
    args = [exe, "-v", "en-us", "-s", str(speed), "--stdout"]
    out = subprocess.run(args, input=text.encode(), capture_output=True, check=True, timeout=30)
    pcm, source_rate = parse_wav(out.stdout)
    return pcm if source_rate == rate else resample(pcm, source_rate, rate)


def padded(pcm: Pcm, rate: int, seconds: float = 0.4) -> Pcm:
    """Leading and trailing silence, as a VAD turn with prefix padding would give."""
    pad = silence(int(rate * seconds))
    return np.concatenate([pad, pcm, pad])


def normalise(text: str) -> list[str]:
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()
    out: list[str] = []
    for word in words:
        word = word.strip("'")
        if word.isdigit() and int(word) < len(_DIGITS):
            out.append(_DIGITS[int(word)])
        elif word:
            out.append(word)
    return out


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length). Hand-written: twelve lines, not worth a dependency."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)
