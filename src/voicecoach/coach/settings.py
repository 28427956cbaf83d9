"""What the coach listens for and how it answers. Plain pydantic (no settings sources): config.py nests it.

Each field's type carries its own bounds (the ``Annotated`` aliases below), so that a profile
(:class:`voicecoach.profiles.Profile`, every field optional) checks its values by exactly the same rules.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

QUICK_INSTRUCTIONS = (
    "Give ONE short, concrete hint the person can say or use right now, based on the transcript. "
    "At most two sentences. No preamble, no lists."
)
FULL_INSTRUCTIONS = (
    "Give compact guidance for the current topic of the transcript: the key point, how to answer or proceed, "
    "and one pitfall to avoid. Speak naturally, no lists, no preamble."
)

# Output tokens per second of speech: assistant audio is ~20 tokens/s, and its transcript adds ~3-4 text
# tokens/s (realtime-protocol.md §9). max_output_tokens counts both.
TOKENS_PER_SECOND = 24
# The realtime models' context is 32,768 tokens, the answer (up to 4,096) included: this leaves room for the
# instructions and the transcript window next to the largest context allowed.
MAX_CONTEXT_TOKENS = 24_000

Tier = Literal["quick", "full"]  # the two kinds of hint; their labels live in labels.py


def _one_line_label(value: str) -> str:
    # A label starts transcript lines ("Interviewer: ..."): it must be visible and stay on one line.
    label = value.strip()
    if not label or any((ch.isspace() and ch != " ") or not ch.isprintable() for ch in label):
        raise ValueError("them_label must be a short one-line name, such as 'Interviewer'")
    return label


def _context_path(value: object) -> object:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("must be a file name, not empty")
        # os.path.expanduser leaves an unknown ~user as it is (Path.expanduser would raise).
        return os.path.expanduser(value)
    return value


Phrases = list[str]
Window = Annotated[int, Field(ge=1, le=200)]
HintSeconds = Annotated[float, Field(gt=0, le=170)]
Cooldown = Annotated[float, Field(ge=0)]
WindowMode = Literal["text", "references"]
Label = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_one_line_label)]
ContextFiles = list[Annotated[Path, BeforeValidator(_context_path)]]
ContextLimit = Annotated[int, Field(ge=1, le=MAX_CONTEXT_TOKENS)]


class CoachSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    quick_phrases: Phrases = ["good question"]
    full_phrases: Phrases = ["give me guidance", "walk me through it"]
    interrupt_phrases: Phrases = ["got it", "thanks, got it", "stop"]
    quick_window: Window = 3
    full_window: Window = 10
    quick_seconds: HintSeconds = 10.0
    full_seconds: HintSeconds = 30.0
    quick_instructions: str = QUICK_INSTRUCTIONS
    full_instructions: str = FULL_INSTRUCTIONS
    cooldown_seconds: Cooldown = 3.0
    mute_mic_while_speaking: bool = False
    window_mode: WindowMode = "text"
    # How the other side of the call (the "them" channel) is named in the transcript, the hints and the files.
    them_label: Label = "Them"
    # Text and Markdown files sent before the transcript with every hint (context.py reads them at start).
    # In a config file, a relative path is relative to that file; on the command line, to the current directory.
    context_files: ContextFiles = []
    # The largest context accepted, in estimated tokens (4 characters each): a larger one is refused at start.
    context_limit_tokens: ContextLimit = 4000

    def max_output_tokens(self, tier: Tier) -> int:
        seconds = self.quick_seconds if tier == "quick" else self.full_seconds
        return max(1, min(4096, round(seconds * TOKENS_PER_SECOND)))
