"""Connect: process start → ``session.updated``, phase by phase, one fresh process per sample, per transport.

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

COMMON = ("interpreter_ms", "imports_ms", "settings_ms", "token_ms")
TAIL = ("session_updated_ms", "other_ms", "after_imports_ms", "total_ms")
# The transport's own phases (``transport.timings``) come between the token and the session.update round trip.
PHASES = {
    "webrtc": (*COMMON, "ice_gathering_ms", "sdp_post_ms", "dtls_sctp_ms", *TAIL),
    "websocket": (*COMMON, "ws_upgrade_ms", "first_event_ms", *TAIL),
}


async def sample(base_url: str, tmp: Path, transport: str) -> dict[str, Any]:
    """One fresh client process connecting over ``transport``: its phases (ms) and ``"link"`` (see connect_child)."""
    spawn = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        python(),
        "-m",
        "benchlib.connect_child",
        repr(spawn),
        base_url,
        str(tmp),
        transport,
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
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def samples_of(base_url: str, tmp: Path, transport: str, n: int) -> list[dict[str, Any]]:
    await sample(base_url, tmp, transport)  # warm-up, not recorded
    return [await sample(base_url, tmp, transport) for _ in range(n)]


def phase_figures(results: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: summarize([r[name] for r in results if name in r]) for name in names}


def links_seen(results: list[dict[str, Any]]) -> list[str]:
    """The transports the samples came up on, once each (a WebRTC sample on WebSocket would be a fallback)."""
    return sorted({r["link"].get("transport", "?") for r in results})


async def _run(tmp: Path, transport: str, samples: int) -> list[dict[str, Any]]:
    async with ServerProcess(tmp) as server:
        return await samples_of(server.base_url, tmp, transport, samples)


def run(tmp: Path, *, samples: int, transport: str = "webrtc") -> dict[str, Any]:
    """Connect figures over ``transport``; the WebRTC run also reports the import times by package."""
    results = asyncio.run(_run(tmp, transport, samples))
    if links_seen(results) != [transport]:
        raise RuntimeError(f"asked for {transport}, the samples came up on {links_seen(results)}")
    figures: dict[str, Any] = {"phases_ms": phase_figures(results, PHASES[transport])}
    if transport != "webrtc":
        return figures
    total, by_package = importtime(["-c", "import voicecoach.cli, voicecoach.config, voicecoach.app"], tmp)
    slowest = dict(sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:8])
    return {
        **figures,
        # -X importtime itself slows imports down; the shares are what matter.
        "importtime_total_ms": round(total, 1),
        "importtime_by_package_ms": {k: round(v, 1) for k, v in slowest.items()},
    }
