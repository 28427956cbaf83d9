"""A private PulseAudio daemon with two null sinks, for device tests and ``scripts/with-virtual-audio``.

Standard library only, so the shell script can run it with any ``python3``. The recipe (testing.md):

* own runtime/config dirs and cookie in a temp dir, exported through ``env`` (PULSE_SERVER etc.);
* ``pulseaudio --daemonize`` with ``scripts/virtual-audio/virtual.pa`` (sinks ``vspeaker`` and ``vmic``);
* one ``parec`` keeper per sink monitor: an idle null sink renders ahead and stalls every new stream by
  1.5-2 s without one;
* wait until audio flows out of each monitor before declaring the daemon ready;
* stop keepers and the daemon by their pids, never by name.

Run as a program: ``python3 pulse.py CMD ARGS...`` runs CMD inside the daemon and exits with its status.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

PA_FILE = Path(__file__).resolve().parents[2] / "scripts" / "virtual-audio" / "virtual.pa"
SINKS = ("vspeaker", "vmic")
START_TIMEOUT_S = 15.0


def missing_reason() -> str | None:
    """Why the virtual devices cannot exist here (None: they can)."""
    if shutil.which("pulseaudio") is None:
        return "PulseAudio is not installed (no `pulseaudio` binary): apt-get install pulseaudio pulseaudio-utils"
    return None


class VirtualAudio:
    """Start with :meth:`start` (or ``with``); ``env`` holds the variables a client process needs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        run = root / "run"
        self.env = {
            "XDG_RUNTIME_DIR": str(run),
            "XDG_CONFIG_HOME": str(root / "config"),
            "PULSE_SERVER": f"unix:{run}/pulse/native",
            "PULSE_COOKIE": str(root / "cookie"),
        }
        self.log = root / "pulseaudio.log"
        self.pid_file = run / "pulse" / "pid"
        self._keepers: list[subprocess.Popen[bytes]] = []
        self.daemon_pid: int | None = None

    def child_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def start(self) -> None:
        (self.root / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.root / "config").mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            subprocess.run(
                ["pulseaudio", "--daemonize=yes", "-n", "-F", str(PA_FILE), "--exit-idle-time=-1",
                 f"--log-target=file:{self.log}"],
                env=self.child_env(), check=True, timeout=START_TIMEOUT_S, capture_output=True,
            )  # fmt: skip
            self.daemon_pid = self._wait_for_pid(deadline)
            self._wait_for_server(deadline)
            for sink in SINKS:
                self._keepers.append(self._parec(sink, stdout=subprocess.DEVNULL))
            for sink in SINKS:
                self._wait_for_flow(sink, deadline)
        except BaseException:
            self.stop()
            raise

    def _wait_for_pid(self, deadline: float) -> int:
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int(self.pid_file.read_text().strip())
            time.sleep(0.02)
        raise TimeoutError(f"PulseAudio wrote no pid file ({self.pid_file}); see {self.log}")

    def _wait_for_server(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            info = subprocess.run(["pactl", "info"], env=self.child_env(), capture_output=True, timeout=5)
            if info.returncode == 0:
                return
            time.sleep(0.05)
        raise TimeoutError(f"PulseAudio did not answer `pactl info`; see {self.log}")

    def _parec(self, sink: str, stdout: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["parec", "-d", f"{sink}.monitor", "--latency-msec=10", "--raw", "--channels=1"],
            env=self.child_env(), stdout=stdout,
        )  # fmt: skip

    def _wait_for_flow(self, sink: str, deadline: float) -> None:
        """Read 960 bytes from the monitor: the first ~2 s after loading a null sink deliver nothing."""
        probe = self._parec(sink, stdout=subprocess.PIPE)
        try:
            assert probe.stdout is not None
            got = 0
            while got < 960:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([probe.stdout], [], [], left)[0]:
                    raise TimeoutError(f"no audio flows from {sink}.monitor; see {self.log}")
                chunk = os.read(probe.stdout.fileno(), 960 - got)
                if not chunk:
                    raise RuntimeError(f"parec on {sink}.monitor exited ({probe.wait(5)}); see {self.log}")
                got += len(chunk)
        finally:
            _end(probe)

    def stop(self) -> None:
        """Stop the keepers and the daemon (by pid); safe to call twice."""
        for keeper in self._keepers:
            _end(keeper)
        self._keepers.clear()
        pid, self.daemon_pid = self.daemon_pid, None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.02)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> VirtualAudio:
        self.start()
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (the daemon is not our child, so nobody reaps it here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: with-virtual-audio CMD [ARGS...]", file=sys.stderr)
        return 2
    reason = missing_reason()
    if reason is not None:
        print(f"with-virtual-audio: {reason}", file=sys.stderr)
        return 2
    # SIGTERM must still stop the daemon: turn it into an exception that unwinds through the `with`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with tempfile.TemporaryDirectory(prefix="virtual-audio-") as tmp, VirtualAudio(Path(tmp)) as audio:
        return subprocess.call(argv, env=audio.child_env())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
