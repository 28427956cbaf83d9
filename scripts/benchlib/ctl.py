"""``voicecoach ctl hint`` process start → ``response.create`` received by the server, through the real programs.

The client is the real program (``voicecoach run --plain``, a meeting WAV on ``--loop`` as its microphone) with
its control socket in a private XDG_RUNTIME_DIR. The local server runs in this process: it is the observer,
and its receive time is the end point. Each round:

1. ``voicecoach ctl hint`` is started (the console script, as a desktop shortcut runs it; ``python -m
   voicecoach`` when the package is not installed); the start point is just before it is spawned, so the
   figure holds the interpreter's start-up, the ctl path's imports, the socket round trip, the run's loop
   turn and the event's way over WebRTC to the server.
2. The end point is the server appending the ``response.create`` to the call's received events (its events
   channel handler, on this process's loop; the list is wrapped to stamp each event with ``time.monotonic()``).
   CLOCK_MONOTONIC is system-wide on Linux, so the two ends compare.
3. ``voicecoach ctl stop`` ends the hint (``stop_process_start_to_cancel_received_ms``: to the first of
   ``response.cancel`` and ``output_audio_buffer.clear``), and the round waits ``SETTLE_S`` so that each one
   starts from an idle coach.

Also: the ctl process's own wall time (start to exit, its answer printed), and which heavy packages its import
path loads (``-X importtime``; none is the budget).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib.common import LOOPBACK, child_env, poll, python, speech
from benchlib.startup import HEAVY, importtime
from benchlib.stats import summarize

SAMPLES = 15
START_S = 30.0
ROUND_S = 5.0  # a ctl hint with no response.create within this counts as missed
SETTLE_S = 0.5  # after an interrupt the player holds until 200 ms of silence: let it pass before the next round
LINES = ("Point one is the budget.", "Point two is the hiring plan.")
HINT = "Say the budget holds, then ask about the date."
STOPS = ("response.cancel", "output_audio_buffer.clear")


class _Stamped(list[Any]):
    """A call's ``events_received``, also keeping when each event arrived (time.monotonic())."""

    def __init__(self, events: list[Any]) -> None:
        super().__init__(events)
        self.at: list[float] = [0.0] * len(events)
        self.changed = asyncio.Event()

    def append(self, event: Any) -> None:
        self.at.append(time.monotonic())
        super().append(event)
        self.changed.set()

    def first(self, types: tuple[str, ...], since: int) -> float | None:
        for i in range(since, len(self)):
            if isinstance(self[i], dict) and self[i].get("type") in types:
                return self.at[i]
        return None

    async def wait_for(self, types: tuple[str, ...], since: int, limit_s: float) -> float | None:
        try:
            async with asyncio.timeout(limit_s):
                while (at := self.first(types, since)) is None:
                    self.changed.clear()
                    await self.changed.wait()
                return at
        except TimeoutError:
            return None


def ctl_command() -> list[str]:
    """What a desktop shortcut runs: the console script beside this interpreter, else ``python -m``."""
    script = Path(python()).with_name("voicecoach")
    if script.exists():
        return [str(script), "ctl"]
    found = shutil.which("voicecoach")
    return [found, "ctl"] if found else [python(), "-m", "voicecoach", "ctl"]


class _Ctl:
    def __init__(self, env: dict[str, str]) -> None:
        self.command = ctl_command()
        self.env = env

    async def __call__(self, *args: str) -> tuple[float, float, str]:
        """(monotonic time just before the spawn, the process's wall time in ms, its stdout)."""
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *self.command, *args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), ROUND_S)
        wall_ms = (time.monotonic() - started) * 1000
        if proc.returncode != 0:
            raise RuntimeError(f"voicecoach ctl {' '.join(args)}: {err.decode().strip()}")
        return started, wall_ms, out.decode().strip()


def _mic(path: Path) -> Path:
    import numpy as np

    from voicecoach.audio.files import wav_header
    from voicecoach.audio.frames import WIRE_RATE, silence

    gap = silence(WIRE_RATE)
    pcm = np.concatenate([part for line in LINES for part in (speech(line), gap)])
    path.write_bytes(wav_header(WIRE_RATE, 1, pcm.size * 2) + pcm.astype("<i2").tobytes())
    return path


class _Lines:
    """The client's stdout, line by line as it comes (the reader task is owned here)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.seen: list[str] = []
        self._task = asyncio.create_task(self._read(stream), name="bench-ctl-stdout")

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.seen.append(line.decode(errors="replace").rstrip("\n"))

    def find(self, predicate: Callable[[str], bool]) -> str | None:
        return next((line for line in self.seen if predicate(line)), None)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _measure(tmp: Path, runtime: str, samples: int) -> dict[str, Any]:
    from voicecoach.server import RealtimeServer, Scenario, ServerConfig

    mic = _mic(tmp / "ctl-meeting.wav")
    scenario = Scenario(utterances=list(LINES), responses=[HINT])
    server = RealtimeServer(ServerConfig(scenario=scenario, voice="synth", response_latency=0.05))
    env = child_env(tmp, {"XDG_RUNTIME_DIR": runtime})
    ctl = _Ctl(env)
    created: list[float] = []
    walls: list[float] = []
    stopped: list[float] = []
    missed = 0
    async with server:
        args = [
            "-m", "voicecoach", "run", "--plain", "--base-url", server.base_url, "--ice-host", LOOPBACK,
            "--input-file", str(mic), "--loop", "--output-file", str(tmp / "ctl.wav"), "--them-device", "none",
            "--duration", "600",
        ]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            python(), *args, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdout is not None
        out = _Lines(proc.stdout)
        try:
            await poll(lambda: out.find(lambda s: s == "[listening]") is not None, START_S, "the run to listen")
            line = out.find(lambda s: s.startswith("control: ")) or "no control line"
            if "(socket " not in line:
                raise RuntimeError(f"the run has no control socket: {line}")
            events = _Stamped(server.calls[-1].events_received)
            server.calls[-1].events_received = events
            await ctl("status")  # warm the disk cache: the first start of an interpreter is not the figure
            for _ in range(samples):
                mark = len(events)
                start, wall_ms, _ = await ctl("hint")
                at = await events.wait_for(("response.create",), mark, ROUND_S)
                if at is None:
                    missed += 1
                    continue
                created.append((at - start) * 1000)
                walls.append(wall_ms)
                mark = len(events)
                start, _, _ = await ctl("stop")
                cut = await events.wait_for(STOPS, mark, ROUND_S)
                if cut is not None:
                    stopped.append((cut - start) * 1000)
                await asyncio.sleep(SETTLE_S)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            await out.close()
    return {
        "command": " ".join(Path(ctl.command[0]).name if i == 0 else a for i, a in enumerate(ctl.command)),
        "samples": samples,
        "missed": missed,
        "process_start_to_response_create_received_ms": summarize(created),
        "ctl_process_wall_ms": summarize(walls),
        "stop_process_start_to_cancel_received_ms": summarize(stopped),
    }


def run(tmp: Path, *, samples: int = SAMPLES) -> dict[str, Any]:
    if sys.platform == "win32":
        return {"skipped": "not measured: voicecoach ctl has no socket on Windows yet"}
    # Short and private: a Unix socket's path must fit in 107 bytes, and no other run's socket may answer.
    with tempfile.TemporaryDirectory(prefix="vc-bench-", dir="/tmp") as runtime:
        os.chmod(runtime, 0o700)
        figures = asyncio.run(_measure(tmp, runtime, samples))
        previous = os.environ.get("XDG_RUNTIME_DIR")
        os.environ["XDG_RUNTIME_DIR"] = runtime  # child_env copies it: the import run finds no one to talk to
        try:
            import_ms, by_package = importtime(["-m", "voicecoach", "ctl", "status"], tmp)
        finally:
            if previous is None:
                del os.environ["XDG_RUNTIME_DIR"]
            else:
                os.environ["XDG_RUNTIME_DIR"] = previous
    heavy = sorted(name for name in (*HEAVY, "argparse") if name in by_package)
    return {
        **figures,
        "import_ms": round(import_ms, 1),
        "heavy_imports": heavy,
        "heavy_import_count": len(heavy),
    }
