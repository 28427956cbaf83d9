"""What every UI implements: the runner hands it each action and a few session-level facts."""

from __future__ import annotations

from typing import Protocol

from ..coach.actions import Action


class View(Protocol):
    def show(self, action: Action, now: float) -> None:
        """Render one action (status, transcript, notice, metric). Must not block."""

    def info(self, text: str) -> None:
        """A session-level line (connecting to…, summary)."""
