"""The real ``voicecoach demo`` in an 80x24 tmux terminal: the status bar and footer fit, and one Ctrl-C quits
with exit status 130, leaving the terminal clean. (The 140-column walk-through is tests/tmux/test_tmux_demo.py.)"""

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
        done = subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=10, env=dict(os.environ)
        )
        return done.stdout

    def wait_for(self, predicate: Callable[[str], bool], seconds: float, what: str) -> str:
        deadline = time.monotonic() + seconds
        screen = ""
        while time.monotonic() < deadline:
            screen = self.run("capture-pane", "-p", "-t", self.name)
            if predicate(screen):
                return screen
            time.sleep(0.2)  # polling the terminal; the wait itself is bounded by the deadline
        raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path)
    yield t
    t.run("kill-server")


def test_demo_at_80x24_fits_and_one_ctrl_c_exits_130(tmux: Tmux, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VOICECOACH_", "OPENAI_"))},
        "TERM": "xterm-256color",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "VOICECOACH_DATA_DIR": str(tmp_path / "data"),
    }
    env_args = [arg for k, v in env.items() if k.isidentifier() for arg in ("-e", f"{k}={v}")]
    command = f"{sys.executable} -m voicecoach demo; echo exit-status=$?"
    tmux.run("new-session", "-d", "-s", tmux.name, "-x", "80", "-y", "24", *env_args, command)
    tmux.run("set-option", "-t", tmux.name, "remain-on-exit", "on")  # keep the final screen to read

    def priced(screen: str) -> bool:  # live, and the first hint has a cost and a latency
        return any("● connected" in row and "$" in row for row in screen.splitlines())

    screen = tmux.wait_for(priced, 40, "a live session with a priced hint")
    rows = screen.splitlines()
    bar = next(row for row in rows if "● connected" in row)
    assert "hint — " not in bar, bar
    for field in ("listening", "speaking", "muted"):
        assert field in bar, (field, bar)
    footer = next(row for row in rows if "q Quit" in row)
    assert "? Help" in footer, footer

    tmux.run("send-keys", "-t", tmux.name, "C-c")
    final = tmux.wait_for(lambda s: "exit-status=" in s, 20, "the demo to exit after one Ctrl-C")
    assert "exit-status=130" in final, final
    assert "Do you want to quit" not in final and "q Quit" not in final  # no toast; the full-screen UI is gone
    assert "finished: Ctrl-C" in final or "ended: Ctrl-C" in final, final  # the run was stopped and summed up
