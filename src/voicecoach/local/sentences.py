"""Cut streamed text into pieces worth speaking, so the first audio does not wait for the whole hint.

Pure (no I/O, no clock): :class:`SentenceCutter` takes deltas of any size and returns finished pieces.

Where a piece ends:

* after ``.``, ``!`` or ``?`` (with any closing quotes or brackets) *followed by white space*: the space has to
  be seen, because a delta may end in "3." of "3.5" or "e." of "e.g."; so a sentence is released when the next
  delta begins, or at the end of the stream. A few abbreviations ("Mr.", "e.g.") never end a sentence;
* at a line break (LLMs break lists that way);
* at ``,``, ``;`` or ``:`` once the piece has :data:`CLAUSE_WORDS` words: a long clause is spoken while the rest
  of the sentence is still being generated (a shorter cut would make the voice's intonation choppy);
* at a space once the piece has :data:`MAX_WORDS` words with no punctuation at all (a model that does not
  punctuate would otherwise hold everything back to the end).

The trade-off: each piece is synthesised on its own, so a cut mid-sentence costs a slightly unnatural pause;
a sentence is typically 10 to 20 words, about 1 s of generation at 15 to 120 tokens/s, against 2 to 4 s of speech.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator

CLAUSE_WORDS = 12
MAX_WORDS = 30
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "vs", "e.g", "i.e", "etc", "approx"})
_CLOSERS = "\"')]}\u201d\u2019"
# A sentence end: terminator(s), closers, then the white space that proves the sentence is over.
_SENTENCE_END = re.compile(rf"[.!?\u2026]+[{re.escape(_CLOSERS)}]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:](?=\s)")


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the "." at ``dot`` ends an abbreviation like "Mr." or "e.g." rather than a sentence."""
    if text[dot] != ".":
        return False
    word = text[:dot].rsplit(None, 1)[-1] if text[:dot].strip() else ""
    return word.lower().strip(_CLOSERS + "([{") in _ABBREVIATIONS


class SentenceCutter:
    def __init__(self) -> None:
        self._buffer = ""

    def push(self, delta: str) -> list[str]:
        """Add a delta; returns the pieces it finished (stripped, never empty)."""
        self._buffer += delta
        pieces: list[str] = []
        while (cut := self._next_cut()) is not None:
            piece, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if piece:
                pieces.append(piece)
        return pieces

    def finish(self) -> str | None:
        """The rest, at the end of the stream (None when nothing is left)."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest or None

    def _next_cut(self) -> int | None:
        text = self._buffer
        for match in _SENTENCE_END.finditer(text):
            if not _is_abbreviation(text, match.start()):
                return match.end()
        newline = text.find("\n")
        if newline >= 0 and text[:newline].strip():
            return newline + 1
        if newline >= 0:  # only white space before it: drop the blank line
            self._buffer = text[newline + 1 :]
            return self._next_cut()
        for match in _CLAUSE_END.finditer(text):
            if len(text[: match.start()].split()) >= CLAUSE_WORDS:
                return match.end()
        words = list(re.finditer(r"\S+(?=\s)", text))
        if len(words) >= MAX_WORDS:
            return words[MAX_WORDS - 1].end()
        return None


async def sentences(deltas: AsyncIterable[str]) -> AsyncIterator[str]:
    """The pieces of a stream of text deltas, each as soon as it is finished (see the module docstring)."""
    cutter = SentenceCutter()
    async for delta in deltas:
        for piece in cutter.push(delta):
            yield piece
    rest = cutter.finish()
    if rest is not None:
        yield rest
