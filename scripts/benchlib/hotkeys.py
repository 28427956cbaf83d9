"""Global hotkey press → ``response.create`` received by the server, through the real program under Xvfb.

The client is the real program (``python -m voicecoach run --plain``, a meeting WAV on ``--loop`` as its
microphone, ``[hotkeys] hint = "<ctrl>+<alt>+h"`` and ``stop = "<ctrl>+<alt>+s"`` in its config file), on a
private X server (``Xvfb -displayfd``), so its hotkeys run on pynput's X11 listener. The local server runs in
this process: it is the observer, and its receive time is the end point. Each round:

1. ``xdotool key ctrl+alt+h`` is started; the start point is just before it is spawned, so the figure includes
   xdotool's own start-up up to its XTEST request (a few ms a real keyboard would not cost). ``xdotool_ms`` is
   xdotool's whole run, for information: it exits well after the keys went out (its key delay and teardown),
   which is why it reads longer than the figure itself.
2. The end point is the server appending the ``response.create`` to the call's received events (its events
   channel handler, on this process's loop; the list is wrapped to stamp each event with ``time.monotonic()``).
   CLOCK_MONOTONIC is system-wide on Linux, so the two ends compare.
3. ``xdotool key ctrl+alt+s`` stops the hint (``stop_to_cancel_ms``: to the first of ``response.cancel`` and
   ``output_audio_buffer.clear``), and the round waits ``SETTLE_S`` so that each starts from an idle coach.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from benchlib.common import LOOPBACK, child_env, poll, python, speech
from benchlib.stats import summarize
from voicecoach.audio.files import wav_header
from voicecoach.audio.frames import WIRE_RATE, silence

PRESSES = 15
START_S = 30.0
ROUND_S = 5.0  # a press with no response.create within this counts as missed
SETTLE_S = 0.5  # after an interrupt the player holds until 200 ms of silence: let it pass before the next round
LINES = ("Point one is the budget.", "Point two is the hiring plan.", "Point three is the launch date.")
HINT = "Say the budget holds, then ask about the date."
HOTKEYS = '[hotkeys]\nhint = "<ctrl>+<alt>+h"\nstop = "<ctrl>+<alt>+s"\n'
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


@contextlib.asynccontextmanager
async def _xvfb() -> AsyncIterator[str]:
    """A private X server (the same recipe as tests/hotkeys_harness.py); yields its DISPLAY."""
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        "Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp", "-noreset",
        pass_fds=(write_end,), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_end)
    try:
        number = (await asyncio.wait_for(asyncio.to_thread(os.read, read_end, 32), START_S)).decode().strip()
        if not number:
            raise RuntimeError("Xvfb exited before it was ready")
        yield f":{number}"
    finally:
        os.close(read_end)
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _xdotool(display: str, keys: str) -> tuple[float, float]:
    """(monotonic time just before spawning ``xdotool key KEYS``, its run time in ms)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "xdotool", "key", keys, env={**os.environ, "DISPLAY": display}, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), ROUND_S)
    if proc.returncode != 0:
        raise RuntimeError(f"xdotool key {keys}: {err.decode().strip()}")
    return started, (time.monotonic() - started) * 1000


def _mic(path: Path) -> Path:
    import numpy as np

    gap = silence(WIRE_RATE)
    pcm = np.concatenate([part for line in LINES for part in (speech(line), gap)])
    path.write_bytes(wav_header(WIRE_RATE, 1, pcm.size * 2) + pcm.astype("<i2").tobytes())
    return path


class _Lines:
    """The client's stdout, line by line as it comes (the reader task is owned here)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.seen: list[str] = []
        self._task = asyncio.create_task(self._read(stream), name="bench-hotkeys-stdout")

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.seen.append(line.decode(errors="replace").rstrip("\n"))

    def find(self, predicate: Callable[[str], bool]) -> str | None:
        return next((line for line in self.seen if predicate(line)), None)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _measure(tmp: Path, presses: int) -> dict[str, Any]:
    from voicecoach.server import RealtimeServer, Scenario, ServerConfig

    config = tmp / "hotkeys.toml"
    config.write_text(HOTKEYS, encoding="utf-8")
    mic = _mic(tmp / "hotkeys-meeting.wav")
    scenario = Scenario(utterances=list(LINES), responses=[HINT])
    server = RealtimeServer(ServerConfig(scenario=scenario, voice="synth", response_latency=0.05))
    created: list[float] = []
    xdotool: list[float] = []
    stopped: list[float] = []
    missed = 0
    async with _xvfb() as display, server:
        with tempfile.TemporaryDirectory(prefix="vc-bench-", dir="/tmp") as runtime:
            os.chmod(runtime, 0o700)
            env = child_env(tmp, {"DISPLAY": display, "XDG_SESSION_TYPE": "x11", "XDG_RUNTIME_DIR": runtime})
            env.pop("WAYLAND_DISPLAY", None)
            args = [
                "-m", "voicecoach", "run", "--plain", "--config", str(config), "--base-url", server.base_url,
                "--ice-host", LOOPBACK, "--input-file", str(mic), "--loop", "--output-file", str(tmp / "hk.wav"),
                "--them-device", "none", "--duration", "600",
            ]  # fmt: skip
            proc = await asyncio.create_subprocess_exec(
                python(), *args, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert proc.stdout is not None
            out = _Lines(proc.stdout)
            try:
                await poll(lambda: out.find(lambda s: s == "[listening]") is not None, START_S, "the run to listen")
                line = out.find(lambda s: s.startswith("hotkeys:")) or "no hotkeys line"
                if not line.startswith("hotkeys: X11 via pynput"):
                    raise RuntimeError(f"the run's hotkeys are not on: {line}")
                events = _Stamped(server.calls[-1].events_received)
                server.calls[-1].events_received = events
                for _ in range(presses):
                    mark = len(events)
                    start, run_ms = await _xdotool(display, "ctrl+alt+h")
                    at = await events.wait_for(("response.create",), mark, ROUND_S)
                    if at is None:
                        missed += 1
                        continue
                    created.append((at - start) * 1000)
                    xdotool.append(run_ms)
                    mark = len(events)
                    start, _ = await _xdotool(display, "ctrl+alt+s")
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
        "mechanism": line,
        "presses": presses,
        "missed": missed,
        "press_to_create_ms": summarize(created),
        "xdotool_ms": summarize(xdotool),
        "stop_to_cancel_ms": summarize(stopped),
    }


def run(tmp: Path, *, presses: int = PRESSES) -> dict[str, Any]:
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if missing:
        return {"skipped": f"not measured: {' and '.join(missing)} not installed (apt-get install -y xvfb xdotool)"}
    # (find_spec, not an import: importing pynput connects to this process's display, which may not exist)
    if importlib.util.find_spec("pynput") is None:
        return {"skipped": "not measured: pynput is not installed (pip install 'voicecoach[hotkeys]')"}
    return asyncio.run(_measure(tmp, presses))
