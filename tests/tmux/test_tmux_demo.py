"""Drive the real ``voicecoach demo`` in a real terminal (tmux): what the screen shows, and a clean exit.

tmux gives the program a real TTY, so the demo picks the full-screen Textual UI. The test polls
``capture-pane`` (bounded) instead of sleeping, presses keys with ``send-keys``, and after the program exits
checks that the terminal is back to normal (the summary is printed on the normal screen) and the exit status.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


class Tmux:
    def __init__(self, tmp_path: Path) -> None:
        self.name = f"vc-{uuid.uuid4().hex[:8]}"
        self.socket = str(tmp_path / "tmux.sock")

    def run(self, *args: str) -> str:
        # env=os.environ, not the inherited C environment: readline (loaded by pytest) exports COLUMNS=80 and
        # LINES=24 there, the tmux server would hand them to the pane, and the app would size itself 80x24.
        out = subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=10, env=dict(os.environ)
        )
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)

    def wait_for(self, predicate: Callable[[str], bool], seconds: float, what: str) -> str:
        deadline = time.monotonic() + seconds
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.2)  # polling the terminal; the wait itself is bounded by the deadline
        raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path)
    yield t
    t.run("kill-server")


def start_demo(tmux: Tmux, tmp_path: Path, width: int, height: int) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VOICECOACH_", "OPENAI_"))},
        "TERM": "xterm-256color",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "VOICECOACH_DATA_DIR": str(tmp_path / "data"),
    }
    env_args = [arg for k, v in env.items() if k.isidentifier() for arg in ("-e", f"{k}={v}")]
    command = f"{sys.executable} -m voicecoach demo; echo exit-status=$?"
    tmux.run("new-session", "-d", "-s", tmux.name, "-x", str(width), "-y", str(height), *env_args, command)
    tmux.run("set-option", "-t", tmux.name, "remain-on-exit", "on")


def test_demo_in_a_real_terminal(tmux: Tmux, tmp_path: Path) -> None:
    start_demo(tmux, tmp_path, 140, 40)

    # The full-screen UI: status bar, key footer, transcript lines as the scripted meeting goes on.
    screen = tmux.wait_for(lambda s: "listening" in s and "Quick hint" in s, 20, "the status bar and footer")
    assert "gpt-realtime-1.5" in screen
    screen = tmux.wait_for(lambda s: "quick hint" in s, 30, "the quick hint in the transcript")
    # The other side's question and "good question" (which fired nothing), then the user's (which did).
    assert "Them: Thanks for joining" in screen and "You: Good question" in screen
    tmux.run("send-keys", "-t", tmux.name, "l")  # toggle the event log open
    screen = tmux.wait_for(lambda s: "hint requested after" in s, 10, "the event log")
    screen = tmux.wait_for(lambda s: "[interrupted]" in s, 30, "the interrupted full guidance")
    assert "full guidance" in screen

    # The demo ends by itself; the terminal is left clean with the summary on the normal screen.
    final = tmux.wait_for(lambda s: "exit-status=" in s, 40, "the demo to exit")
    assert "exit-status=0" in final
    assert "demo finished: the scripted meeting is over" in final
    assert "silent after the interrupt in" in final
    assert "transcript:" in final
    assert "Quick hint" not in final  # the full-screen UI is gone


def test_demo_at_80x24_fits_and_one_ctrl_c_exits_130(tmux: Tmux, tmp_path: Path) -> None:
    start_demo(tmux, tmp_path, 80, 24)

    def priced(screen: str) -> bool:  # live, and the first hint has a cost and a latency
        # (Transcription is priced from the first line on: the cost alone does not say a hint has come.)
        return any("● connected" in row and "$" in row and "hint — " not in row for row in screen.splitlines())

    screen = tmux.wait_for(priced, 40, "a live session with a priced hint")
    rows = screen.splitlines()
    bar = next(row for row in rows if "● connected" in row)
    assert "hint — " not in bar, bar
    for field in ("listening", "speaking", "muted"):
        assert field in bar, (field, bar)
    footer = next(row for row in rows if "q Quit" in row)
    assert "? Help" in footer, footer

    tmux.run("send-keys", "-t", tmux.name, "C-c")  # once
    final = tmux.wait_for(lambda s: "exit-status=" in s, 20, "the demo to exit after one Ctrl-C")
    assert "exit-status=130" in final, final
    assert "ctrl+q" not in final.lower() and "q Quit" not in final  # no toast; the full-screen UI is gone
    assert "finished: Ctrl-C" in final or "ended: Ctrl-C" in final, final  # the run was stopped and summed up
    assert "transcript:" in final  # saved, and said where
