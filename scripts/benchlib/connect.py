"""Connect: process start → ``session.updated``, phase by phase, one fresh process per sample.

Each sample is :mod:`benchlib.connect_child` started against a local server in another process
(:class:`~benchlib.serverproc.ServerProcess`); the parent notes CLOCK_MONOTONIC just before the spawn. One
unrecorded warm-up sample first, so that every sample finds the files in the page cache (a cold first start
after boot is slower, and is not what this figure is about).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from benchlib.common import child_env, python
from benchlib.serverproc import ServerProcess
from benchlib.startup import importtime
from benchlib.stats import summarize

PHASES = (
    "interpreter_ms",
    "imports_ms",
    "settings_ms",
    "token_ms",
    "ice_gathering_ms",
    "sdp_post_ms",
    "dtls_sctp_ms",
    "session_updated_ms",
    "other_ms",
    "after_imports_ms",
    "total_ms",
)


async def _sample(base_url: str, tmp: Path) -> dict[str, float]:
    spawn = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        python(),
        "-m",
        "benchlib.connect_child",
        repr(spawn),
        base_url,
        str(tmp),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(tmp),
    )
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"connect sample failed ({proc.returncode}): {err.decode()[-800:]}")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def _run(tmp: Path, samples: int) -> list[dict[str, float]]:
    async with ServerProcess(tmp) as server:
        await _sample(server.base_url, tmp)  # warm-up, not recorded
        return [await _sample(server.base_url, tmp) for _ in range(samples)]


def run(tmp: Path, *, samples: int) -> dict[str, Any]:
    results = asyncio.run(_run(tmp, samples))
    total, by_package = importtime(["-c", "import voicecoach.cli, voicecoach.config, voicecoach.app"], tmp)
    slowest = dict(sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:8])
    return {
        "phases_ms": {name: summarize([r[name] for r in results if name in r]) for name in PHASES},
        # -X importtime itself slows imports down; the shares are what matter.
        "importtime_total_ms": round(total, 1),
        "importtime_by_package_ms": {k: round(v, 1) for k, v in slowest.items()},
    }
