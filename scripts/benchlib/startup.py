"""Start-up: ``voicecoach --help`` wall time, and which imports are (not) lazy (``python -X importtime``)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from benchlib.common import child_env, python
from benchlib.stats import summarize

# Imported by `voicecoach run` but never needed for --help: each one loading there is a regression.
HEAVY = ("aiortc", "aioice", "av", "numpy", "textual", "sounddevice", "aiohttp", "pydantic", "pydantic_settings")


def parse_importtime(stderr: str) -> tuple[float, dict[str, float]]:
    """(total ms, self ms per top-level package name) from ``-X importtime`` output.

    Lines read ``import time: self [us] | cumulative | imported package`` (nesting shown by indenting the
    name). Self times are summed by the first dotted part of the name at any depth, so ``aiortc.rtcpeerconnection``
    counts for ``aiortc`` wherever it was imported from, and the per-package figures add up to the total.
    """
    total_us = 0
    by_package: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        head, _cumulative, name = line.split("|", 2)
        self_us = int(head.split(":", 1)[1])
        total_us += self_us
        package = name.strip().split(".")[0]
        by_package[package] = by_package.get(package, 0.0) + self_us / 1000
    return total_us / 1000, by_package


def importtime(args: list[str], tmp: Path) -> tuple[float, dict[str, float]]:
    """Run ``python -X importtime ARGS`` and parse what it reports."""
    done = subprocess.run(
        [python(), "-X", "importtime", *args], capture_output=True, text=True, env=child_env(tmp), timeout=60
    )
    return parse_importtime(done.stderr)


def _help_command() -> list[str]:
    # The console script is what people type; fall back to -m when the package is not installed.
    script = Path(python()).with_name("voicecoach")
    if script.exists():
        return [str(script), "--help"]
    found = shutil.which("voicecoach")
    return [found, "--help"] if found else [python(), "-m", "voicecoach", "--help"]


def run(tmp: Path, *, samples: int) -> dict[str, Any]:
    command = _help_command()
    env = child_env(tmp)
    subprocess.run(command, capture_output=True, env=env, timeout=60, check=True)  # warm the disk cache
    times: list[float] = []
    for _ in range(samples):
        started = time.monotonic()
        subprocess.run(command, capture_output=True, env=env, timeout=60, check=True)
        times.append((time.monotonic() - started) * 1000)
    total_ms, by_package = importtime(["-m", "voicecoach", "--help"], tmp)
    heavy = sorted(name for name in HEAVY if name in by_package)
    slowest = dict(sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:6])
    return {
        "command": " ".join(Path(command[0]).name if i == 0 else a for i, a in enumerate(command)),
        "help_wall_ms": summarize(times),
        "help_import_ms": round(total_ms, 1),
        "help_heavy_imports": heavy,
        "help_heavy_import_count": len(heavy),
        "help_top_imports_ms": {k: round(v, 1) for k, v in slowest.items()},
    }
