"""Line mode (``--plain``): transcript lines and status changes, one per line, for terminals and scripts."""

from __future__ import annotations

import sys
from typing import TextIO

from ..coach.actions import Action, Metric, Notice, StatusChanged, TranscriptChanged

_LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}


class PlainView:
    def __init__(self, out: TextIO | None = None, *, verbose: bool = False) -> None:
        self.out = out or sys.stdout
        self.min_level = 0 if verbose else 1
        self._printed: set[str] = set()  # final lines already printed, by item id

    def info(self, text: str) -> None:
        self._line(text)

    def show(self, action: Action, now: float) -> None:
        match action:
            case StatusChanged(state=state):
                self._line(f"[{state.value}]")
            case TranscriptChanged(message=m, final=True) if m.text.strip() or m.interrupted:
                who = "You" if m.role == "user" else f"Coach ({m.tier or 'hint'})"
                if m.item_id in self._printed:
                    # The text was printed when it was generated; playback was cut short afterwards.
                    if m.interrupted:
                        self._line(f"{who}: [interrupted]")
                    return
                self._printed.add(m.item_id)
                cut = " [interrupted]" if m.interrupted else ""
                self._line(f"{who}: {m.text.strip()}{cut}")
            case Notice(level=level, text=text) if _LEVELS[level] >= self.min_level:
                self._line(f"! {text}" if _LEVELS[level] >= 2 else f"· {text}")
            case Metric(name=name, value=value) if name.endswith("_ms"):
                self._line(f"· {name.removesuffix('_ms')}: {value:.1f} ms")
            case _:
                pass

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()
