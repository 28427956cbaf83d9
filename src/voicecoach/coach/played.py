"""What of a hint the person heard: the prefix of its text that its played audio covers, cut at a word.

Pure: no I/O and no clock. A hint cut short (interrupted, or the run quit) is shown and stored as what was
played; the whole generated text is kept beside it (:attr:`~.conversation.Message.generated_text`).

Two ways to map played milliseconds to characters, and the record says which one was used (``trim``):

* ``"timing"``: the audio transcript's own timing. Where the transport reports the size of each audio delta
  (the WebSocket: ``voicecoach_audio_ms`` on ``response.output_audio.delta``), every transcript delta is an
  anchor: the text before it was spoken by the audio received before it (the server sends a word's text, then
  its audio). Played ms are mapped through these anchors, linearly between two of them.
* ``"proportional"``: played ms / the response's whole audio, times its text. The whole audio is the generated
  audio from ``response.done`` usage (20 tokens per second of assistant audio, realtime-protocol.md §9) when
  it came, else the text's length at the run's speech rate (calibrated on finished hints, else
  :data:`MS_PER_CHAR`). WebRTC always uses this: its audio is on the media track, not next to the text.

The played milliseconds themselves come from the player: the span from the hint's first audible sample to
the cut (pauses inside the hint count, as they are part of its audio; an underrun would make it too long).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Literal

Trim = Literal["timing", "proportional"]

ASSISTANT_AUDIO_TOKENS_PER_S = 20  # realtime-protocol.md §9: assistant audio ≈ 1 token / 50 ms
# A voice speaks ~15 characters (2.5 words) a second: the synthetic voice 0.4 s a word, espeak-ng at 170 words a
# minute and OpenAI's voices all come to 60-70 ms a character. Used until a finished hint calibrates it.
MS_PER_CHAR = 65.0
AUDIO_MS_FIELD = "voicecoach_audio_ms"  # what the WebSocket transport puts on a stripped audio delta
_WORD = re.compile(r"\S+")


@dataclass
class Speech:
    """One hint response's speech as it arrived: the audio received and where the text met it."""

    audio_ms: float = 0.0  # audio received so far, where the transport says (0: unknown, e.g. WebRTC)
    anchors: list[tuple[float, int]] = field(default_factory=list)  # (audio ms before a text delta, chars before)
    generated_audio_ms: float | None = None  # the whole generated audio, from response.done usage

    def transcript_delta(self, chars_before: int) -> None:
        """A transcript delta arrives; ``chars_before`` of text came before it."""
        if self.audio_ms > 0 and (not self.anchors or chars_before > self.anchors[-1][1]):
            self.anchors.append((self.audio_ms, chars_before))

    def audio_delta(self, ms: float) -> None:
        if ms > 0:
            self.audio_ms += ms


@dataclass(frozen=True)
class Cut:
    """What of a hint was heard: ``text`` (a prefix of the generated text, whole words), and how it was found."""

    text: str
    played_ms: float
    trim: Trim


def played_part(text: str, played_ms: float, speech: Speech, ms_per_char: float = MS_PER_CHAR) -> Cut:
    """The words of ``text`` that ``played_ms`` of its audio covered (see the module docstring)."""
    played_ms = max(0.0, played_ms)
    if speech.audio_ms > 0 and speech.anchors:
        return Cut(word_prefix(text, _through_anchors(text, played_ms, speech)), played_ms, "timing")
    total_ms = speech.generated_audio_ms or len(text) * ms_per_char
    share = 1.0 if total_ms <= 0 else min(1.0, played_ms / total_ms)
    return Cut(word_prefix(text, len(text) * share), played_ms, "proportional")


def _through_anchors(text: str, played_ms: float, speech: Speech) -> float:
    """The character position ``played_ms`` reached, linearly between the anchors (the last one is the end)."""
    points = [(0.0, 0), *speech.anchors, (speech.audio_ms, len(text))]
    times = [t for t, _ in points]
    i = bisect_right(times, played_ms) - 1
    if i >= len(points) - 1:
        return float(len(text))
    (t0, c0), (t1, c1) = points[i], points[i + 1]
    return c0 + (c1 - c0) * ((played_ms - t0) / (t1 - t0) if t1 > t0 else 1.0)


def word_prefix(text: str, position: float) -> str:
    """``text`` up to the end of the last word of which more than half lies before ``position`` (characters)."""
    end = 0
    for word in _WORD.finditer(text):
        if (word.start() + word.end()) / 2 >= position:
            break
        end = word.end()
    return text[:end]


def audio_ms_of_tokens(tokens: float) -> float:
    return tokens * 1000 / ASSISTANT_AUDIO_TOKENS_PER_S
