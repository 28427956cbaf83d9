"""Line mode (``--plain``): transcript lines and status changes, one per line, for terminals and scripts."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TextIO

from ..coach.actions import (
    Action,
    Interrupted,
    LinkUp,
    Metric,
    Notice,
    Reconnecting,
    StatusChanged,
    TranscriptChanged,
)
from ..coach.labels import message_label
from .metrics import describe_metric

_LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}


class PlainView:
    def __init__(self, out: TextIO | None = None, *, verbose: bool = False) -> None:
        self.out = out or sys.stdout
        self.min_level = 0 if verbose else 1
        self._printed: set[tuple[str, str]] = set()  # final lines already printed, by (role, item id)
        self.closed = False  # the output pipe was closed: nothing more is written
        self.on_closed: Callable[[str], None] | None = None  # told once when that happens (the runner's stop)
        self._held: list[str] = []  # lines that wait for the next notice (see show)

    def info(self, text: str) -> None:
        self._flush_held()
        self._line(text)

    def _flush_held(self) -> None:
        held, self._held = self._held, []
        for line in held:
            self._line(line)

    def show(self, action: Action, now: float) -> None:
        match action:
            case StatusChanged(state=state):
                self._line(f"[{state.value}]")
            case TranscriptChanged(message=m, final=True) if m.text.strip() or m.interrupted:
                who = message_label(m) if m.role != "coach" else f"{message_label(m)} ({m.tier or 'hint'})"
                # Lines are printed as transcripts finish, so the other side's turn may follow a reply to it
                # here; the TUI and the session files put turns in the order they were spoken.
                key = (m.role, m.item_id)  # two links name their items independently
                if key in self._printed:
                    # The text was printed when it was generated; playback was cut short afterwards.
                    if m.interrupted:
                        played = m.text.strip()
                        self._line(f"{who}: {played} [interrupted]" if played else f"{who}: [interrupted]")
                    return
                self._printed.add(key)
                cut = " [interrupted]" if m.interrupted else ""
                self._line(f"{who}: {m.text.strip()}{cut}")
            case Notice(level=level, text=text) if _LEVELS[level] >= self.min_level:
                self._line(f"! {text}" if _LEVELS[level] >= 2 else f"· {text}")
                self._flush_held()
            case Metric(name="hint.trigger_to_send_ms"):
                # Sent at once, but shown after the hint's "requested" line, which the coach holds until the
                # transcript line that fired it: the lines then read in the order things were said.
                self._held.append(f"· {describe_metric(action)}")
            case Interrupted() if self.min_level <= _LEVELS["info"]:
                self._line(f"· {action.text}")
            case Reconnecting():
                self._line(f"! {action.text}")
            case LinkUp():
                self._line(f"· {action.text}")
            case Metric(name=name) if name.endswith("_ms"):
                self._line(f"· {describe_metric(action)}")
            case _:
                pass

    def _line(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except BrokenPipeError:  # the reader went away (`voicecoach run --plain | head`): end the run cleanly
            self.closed = True
            if self.out is sys.stdout:
                silence_stdout()
            if self.on_closed is not None:
                self.on_closed("the output was closed")


def silence_stdout() -> None:
    """Point the process's stdout at /dev/null once its reader has gone.

    Without this, the interpreter's final flush of ``sys.stdout`` at exit fails on the closed pipe again and
    prints "Exception ignored … BrokenPipeError" (Python's documented advice for SIGPIPE).
    """
    with open(os.devnull, "wb") as devnull:
        try:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout has no file descriptor (a test's buffer): nothing to redirect
            pass
