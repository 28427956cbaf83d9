"""Summaries of repeated samples, and process figures read from /proc (no psutil: it is not a dependency)."""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between order statistics (numpy's default method).

    With few samples a p99 is close to the maximum; :func:`summarize` reports ``n`` so readers can tell.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """``{"n", "median", "p95", "p99", "min", "max", "mean"}`` of ``values`` (NaN-free input expected)."""
    if not values:
        return {"n": 0, "median": None, "p95": None, "p99": None, "min": None, "max": None, "mean": None}
    return {
        "n": len(values),
        "median": round(statistics.median(values), digits),
        "p95": round(percentile(values, 0.95), digits),
        "p99": round(percentile(values, 0.99), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "mean": round(statistics.fmean(values), digits),
    }


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process ``pid`` (all its threads), from /proc/PID/stat.

    Resolution is one clock tick (10 ms at the usual 100 Hz), fine over windows of seconds.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), counted from field 3
    return (utime + stime) / _TICKS


def rss_bytes(pid: int | str = "self") -> tuple[int, int]:
    """(current resident set, peak resident set) in bytes, from /proc/PID/status (VmRSS, VmHWM)."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]
