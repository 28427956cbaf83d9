"""What every benchmark shares: paths, a hermetic environment, client settings, bounded polling, speech.

Hermetic means no user config file, no user data dir and no inherited ``VOICECOACH_*``/``OPENAI_*`` variables,
so a figure measures the code and not someone's settings. Child processes get the same environment plus a
``PYTHONPATH`` that finds both ``benchlib`` and ``voicecoach`` (whether or not the package is installed).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # voicecoach is imported lazily: the connect and start-up benches time those imports
    from voicecoach.audio.frames import Pcm
    from voicecoach.config import Settings

SCRIPTS = Path(__file__).resolve().parents[1]
ROOT = SCRIPTS.parent
SRC = ROOT / "src"
LOOPBACK = "127.0.0.1"


def _clean(env: dict[str, str], tmp: Path) -> dict[str, str]:
    out = {k: v for k, v in env.items() if not k.startswith(("VOICECOACH_", "OPENAI_"))}
    out["XDG_CONFIG_HOME"] = str(tmp / "config")
    out["VOICECOACH_DATA_DIR"] = str(tmp / "data")
    return out


def make_hermetic(tmp: Path) -> None:
    """Apply the hermetic environment to this process (call once, before loading settings)."""
    clean = _clean(dict(os.environ), tmp)
    for name in list(os.environ):
        if name not in clean:
            del os.environ[name]
    os.environ.update(clean)


def child_env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: hermetic, with benchlib and voicecoach importable."""
    env = _clean(dict(os.environ), tmp)
    paths = [str(SCRIPTS), str(SRC), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(extra or {})
    return env


def python() -> str:
    return sys.executable


def bench_settings(base_url: str, **overrides: Any) -> Settings:
    """Client settings for a loopback session against the local server, through the real settings loader."""
    from voicecoach.config import load_settings

    values: dict[str, Any] = {
        "base_url": base_url,
        "ice_hosts": [LOOPBACK],
        "plain": True,
        "keep_sessions": False,
    }
    values.update(overrides)
    return load_settings(None, values)


async def poll(
    condition: Callable[[], bool],
    limit_s: float,
    what: str,
    *,
    every: float = 0.005,
    task: asyncio.Task[Any] | None = None,
) -> None:
    """Wait until ``condition()`` holds, checking every ``every`` s; TimeoutError naming ``what`` after ``limit_s``.

    The figures polled are plain attributes of the runner and coach, which offer no event to await. Polling only
    paces the benchmark (its times come from the view and the sinks), so it stays coarse: a tight poll loop
    would compete with the audio thread for the GIL and change what is measured. With ``task`` given, a task
    that ends first (a session that failed) raises its error instead of timing out.
    """
    try:
        async with asyncio.timeout(limit_s):
            while not condition():
                if task is not None and task.done():
                    task.result()
                    raise RuntimeError(f"the session ended while waiting for {what}")
                await asyncio.sleep(every)
    except TimeoutError:
        raise TimeoutError(f"timed out after {limit_s:g} s waiting for {what}") from None


def speech(text: str) -> Pcm:
    """``text`` as 48 kHz mono speech: espeak-ng when installed (real speech for Opus), else the synthetic voice."""
    from voicecoach.server.voice import speech_pcm

    return speech_pcm(text)


def speech_kind() -> str:
    from voicecoach.server.voice import espeak_path

    return "espeak-ng" if espeak_path() else "synthetic (espeak-ng not installed)"
