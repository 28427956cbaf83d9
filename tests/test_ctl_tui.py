"""``voicecoach ctl`` against the full-screen UI: the real ``voicecoach demo`` in a real terminal (tmux).

The full-screen UI makes its runner once it is mounted, and its profile can change while it runs: the socket
must find both through the app (``app.run_tui``), which line mode never exercises.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


class Tmux:
    def __init__(self, where: Path) -> None:
        self.name = f"vc-{uuid.uuid4().hex[:8]}"
        self.socket = str(where / "tmux.sock")

    def run(self, *args: str) -> str:
        # env=os.environ: readline (loaded by pytest) exports COLUMNS/LINES to the C environment, which would
        # size the pane's app 80x24 (see tests/tmux/test_tmux_demo.py).
        done = subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=10, env=dict(os.environ)
        )
        return done.stdout

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
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="vc-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tmux(runtime: Path) -> Iterator[Tmux]:
    t = Tmux(runtime)
    yield t
    t.run("kill-server")


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicecoach", "ctl", *args], capture_output=True, text=True, timeout=30
    )


def test_ctl_drives_the_full_screen_demo(tmux: Tmux, runtime: Path, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VOICECOACH_", "OPENAI_"))},
        "TERM": "xterm-256color",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "VOICECOACH_DATA_DIR": str(tmp_path / "data"),
    }
    env_args = [arg for k, v in env.items() if k.isidentifier() for arg in ("-e", f"{k}={v}")]
    command = f"{sys.executable} -m voicecoach demo; echo exit-status=$?"
    tmux.run("new-session", "-d", "-s", tmux.name, "-x", "140", "-y", "40", *env_args, command)
    tmux.run("set-option", "-t", tmux.name, "remain-on-exit", "on")
    tmux.wait_for(lambda s: "listening" in s and "Quick hint" in s, 30, "the status bar and footer")

    deadline = time.monotonic() + 20
    done = ctl("status")
    while not done.stdout.startswith("listening") and time.monotonic() < deadline:  # connecting, at first
        time.sleep(0.1)
        done = ctl("status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("listening · WebRTC · no profile · ")
    [socket] = (runtime / "voicecoach").glob("ctl-*.sock")

    done = ctl("mute")
    assert (done.returncode, done.stdout) == (0, "muted: the microphone sends silence\n"), done.stderr
    tmux.wait_for(lambda s: "◉ muted" in s, 10, "the status bar to say muted")
    assert ctl("unmute").returncode == 0
    tmux.wait_for(lambda s: "◉ listening" in s or "◉ speaking" in s, 10, "the status bar to say unmuted again")

    tmux.run("send-keys", "-t", tmux.name, "l")  # the event log: the socket's start-up line is there
    tmux.wait_for(lambda s: "control: voicecoach ctl hint|guide|stop" in s, 10, "the control line in the log")

    tmux.run("send-keys", "-t", tmux.name, "q")
    tmux.wait_for(lambda s: "exit-status=" in s, 40, "the demo to exit")
    assert not socket.exists()
