"""What the coach listens for and how it answers. Plain pydantic (no settings sources): config.py nests it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

Tier = Literal["quick", "full"]  # the two kinds of hint; their labels live in labels.py


class CoachSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    quick_phrases: list[str] = ["good question"]
    full_phrases: list[str] = ["give me guidance", "walk me through it"]
    interrupt_phrases: list[str] = ["got it", "thanks, got it", "stop"]
    quick_window: int = Field(default=3, ge=1, le=200)
    full_window: int = Field(default=10, ge=1, le=200)
    quick_seconds: float = Field(default=10.0, gt=0, le=170)
    full_seconds: float = Field(default=30.0, gt=0, le=170)
    quick_instructions: str = QUICK_INSTRUCTIONS
    full_instructions: str = FULL_INSTRUCTIONS
    cooldown_seconds: float = Field(default=3.0, ge=0)
    mute_mic_while_speaking: bool = False
    window_mode: Literal["text", "references"] = "text"
    # How the other side of the call (the "them" channel) is named in the transcript, the hints and the files.
    them_label: str = Field(default="Them", min_length=1, max_length=40)

    @field_validator("them_label")
    @classmethod
    def _one_line_label(cls, value: str) -> str:
        # A label starts transcript lines ("Interviewer: ..."): it must be visible and stay on one line.
        label = value.strip()
        if not label or any((ch.isspace() and ch != " ") or not ch.isprintable() for ch in label):
            raise ValueError("them_label must be a short one-line name, such as 'Interviewer'")
        return label

    def max_output_tokens(self, tier: Tier) -> int:
        seconds = self.quick_seconds if tier == "quick" else self.full_seconds
        return max(1, min(4096, round(seconds * TOKENS_PER_SECOND)))
