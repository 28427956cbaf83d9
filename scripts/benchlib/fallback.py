"""Fallback: process start → ``session.updated`` over the WebSocket on a network that drops every UDP packet.

The parent runs ``unshare -n python -m benchlib.fallback TMP SAMPLES`` (a new network namespace: loopback
only). Inside it, this module brings ``lo`` up, makes nftables drop all UDP output (as
``tests/faults/test_udp_blocked.py`` does), starts the local server (:class:`~benchlib.serverproc.ServerProcess`,
both transports) and takes connect samples with ``transport = "auto"`` (:func:`benchlib.connect.sample`: a
fresh client process per sample, spawn time noted just before the spawn, ``session.updated`` as the coach
sees it). WebRTC cannot come up there, so each sample pays the WebRTC deadline and then opens the WebSocket;
a sample that came up on anything but the WebSocket fails the benchmark (the block did not work).

Where the namespace cannot be made (not root, no ``unshare``/``nft``/``ip``, a kernel or container that
refuses it) the figure is not measured, and the result says why: ``{"skipped": "not measured: ..."}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchlib.common import child_env, python
from benchlib.connect import PHASES, links_seen, phase_figures, sample, samples_of
from benchlib.serverproc import ServerProcess

TOOLS = ("unshare", "nft", "ip")
BLOCK_UDP = (
    ["ip", "link", "set", "lo", "up"],
    ["nft", "add", "table", "inet", "bench"],
    ["nft", "add", "chain", "inet", "bench", "out", "{ type filter hook output priority 0; }"],
    ["nft", "add", "rule", "inet", "bench", "out", "meta", "l4proto", "udp", "drop"],
)
SAMPLE_LIMIT_S = 30.0


def _why_not() -> str | None:
    """Why the namespace cannot be made here, before trying (None: try)."""
    if os.geteuid() != 0:
        return "not measured: needs root for a network namespace and nftables"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"not measured: {', '.join(missing)} not installed (apt-get install util-linux nftables iproute2)"
    return None


def run(tmp: Path, *, samples: int) -> dict[str, Any]:
    reason = _why_not()
    if reason is not None:
        return {"skipped": reason}
    warmup = samples > 1  # a warm-up costs a whole deadline: --quick takes its one sample cold
    command = ["unshare", "-n", python(), "-m", "benchlib.fallback", "--inside", str(tmp), str(samples)]
    limit = 30 + SAMPLE_LIMIT_S * (samples + warmup)
    done = subprocess.run(
        [*command, "warm" if warmup else "cold"],
        capture_output=True,
        text=True,
        timeout=limit,
        env=child_env(tmp),
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        error = done.stderr.strip().splitlines()
        if any(line.startswith("unshare:") for line in error):  # the kernel refused the namespace itself
            return {"skipped": f"not measured: {error[-1]}"}
        raise RuntimeError(f"the fallback benchmark failed ({done.returncode}): {done.stderr[-800:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- inside the namespace ----------------------------------------------------------------------------------


def _block_udp() -> str | None:
    for step in BLOCK_UDP:
        done = subprocess.run(step, capture_output=True, text=True, timeout=10, check=False)
        if done.returncode != 0:
            return f"not measured: `{' '.join(step)}` failed in the namespace: {done.stderr.strip()}"
    return None


async def _inside(tmp: Path, samples: int, warmup: bool) -> dict[str, Any]:
    async with ServerProcess(tmp) as server:
        if warmup:
            results = await samples_of(server.base_url, tmp, "auto", samples)
        else:
            results = [await sample(server.base_url, tmp, "auto") for _ in range(samples)]
    if links_seen(results) != ["websocket"]:
        raise RuntimeError(f"with UDP blocked the samples came up on {links_seen(results)}, not the WebSocket")
    phases = phase_figures(results, PHASES["websocket"])
    return {
        "process_start_to_session_updated_ms": phases.pop("total_ms"),
        "after_imports_to_session_updated_ms": phases.pop("after_imports_ms"),
        # `other` holds the WebRTC attempt that the deadline cut short: the price of the fallback.
        "phases_ms": phases,
        "why_shown": results[0]["link"]["why"],
        "network": "unshare -n (loopback only), nftables drops all UDP output",
    }


def main(argv: list[str]) -> int:
    tmp, samples, warmup = Path(argv[0]), int(argv[1]), argv[2] == "warm"
    reason = _block_udp()
    out = {"skipped": reason} if reason is not None else asyncio.run(_inside(tmp, samples, warmup))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["--inside"]:
        raise SystemExit("usage: unshare -n python -m benchlib.fallback --inside TMP SAMPLES warm|cold")
    raise SystemExit(main(sys.argv[2:]))
