"""What every UI implements (the runner hands it each action and a few run-level facts), and what it is told."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal, Protocol

from ..coach.actions import Action


class View(Protocol):
    def show(self, action: Action, now: float) -> None:
        """Render one action (status, transcript, notice, metric). Must not block."""

    def info(self, text: str) -> None:
        """A session-level line (connecting to…, summary)."""


@dataclass(frozen=True)
class VoiceOutput:
    """Where the coach's voice goes, as the caller that opened the output knows it: a device, a file, or nowhere.

    Line mode prints :meth:`line` once at the start; the full-screen UI shows it in the event log, puts
    :meth:`short` in the status bar, and raises a notification when the voice is not played at all.
    """

    kind: Literal["device", "file", "none"]
    name: str = ""  # the device's name or the file's path; "" for the default device

    def line(self) -> str:
        if self.kind == "none":
            return "no sound device: the coach's voice is not played (use --output-file to keep it)"
        return f"the coach's voice goes to {self.name or 'the default output device'}"

    def short(self, *, narrow: bool = False) -> str:
        """For a status bar: "voice → hints.wav", "voice not played"; ``narrow``: "→ hints.wav", "no voice"."""
        if self.kind == "none":
            return "no voice" if narrow else "voice not played"
        where = PurePath(self.name).name if self.kind == "file" else self.name or "speakers"
        return f"→ {where}" if narrow else f"voice → {where}"
