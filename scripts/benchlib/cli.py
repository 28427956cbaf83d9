"""``scripts/bench``: run the benchmarks, print the figures and the budgets, write JSON, optionally check.

Exit status: 0, or 1 with ``--check`` when a budget is missed, 2 when a benchmark fails to run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib.budgets import budget_table, check, figures_table
from benchlib.common import make_hermetic


@dataclass(frozen=True)
class Sizes:
    connect_samples: int
    triggers: int
    interrupt_reps: int
    cpu_window_s: float  # per transport
    cpu_rounds: int  # per transport: 2 is WebRTC, WebSocket, WebSocket, WebRTC
    meeting_minutes: float
    startup_samples: int
    fallback_samples: int
    dead_link_freezes: int  # per transport; 0: not measured (each freeze holds the server for ~5 s)
    them_frames: int  # 20 ms frames of the them capture
    ordering_turns: int
    echo_seconds: float  # far-end speech per reference path on the virtual echo path
    drift_seconds: float  # of the synthetic drift path (the full run crosses the reference's 50 s re-anchor)
    echo_interrupt_rounds: int
    ctl_samples: int  # voicecoach ctl hint processes
    hotkey_presses: int  # under Xvfb
    local_triggers: int  # spoken triggers in the local backend's run (each a hint)
    local_window_s: float  # of listening, for the local backend's CPU and RSS


FULL = Sizes(
    connect_samples=10,
    triggers=200,
    interrupt_reps=15,
    cpu_window_s=30,
    cpu_rounds=2,
    meeting_minutes=120,
    startup_samples=10,
    fallback_samples=5,
    dead_link_freezes=5,
    them_frames=1500,
    ordering_turns=2000,
    echo_seconds=30,
    drift_seconds=70,
    echo_interrupt_rounds=10,
    ctl_samples=15,
    hotkey_presses=15,
    local_triggers=10,
    local_window_s=30,
)
QUICK = Sizes(
    connect_samples=2,
    triggers=10,
    interrupt_reps=1,
    cpu_window_s=3,
    cpu_rounds=1,
    meeting_minutes=10,
    startup_samples=2,
    fallback_samples=1,
    dead_link_freezes=0,
    them_frames=50,
    ordering_turns=100,
    echo_seconds=5,
    drift_seconds=20,
    echo_interrupt_rounds=2,
    ctl_samples=3,
    hotkey_presses=3,
    local_triggers=2,
    local_window_s=10,
)


def _benches(sizes: Sizes, tmp: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    # Imported when run, so that `scripts/bench --help` stays instant and each bench loads only what it needs.
    def connect() -> dict[str, Any]:
        from benchlib import connect

        return connect.run(tmp, samples=sizes.connect_samples, transport="webrtc")

    def connect_websocket() -> dict[str, Any]:
        from benchlib import connect

        return connect.run(tmp, samples=sizes.connect_samples, transport="websocket")

    def fallback() -> dict[str, Any]:
        from benchlib import fallback

        return fallback.run(tmp, samples=sizes.fallback_samples)

    def trigger() -> dict[str, Any]:
        from benchlib import hints

        return hints.run_triggers(tmp, n=sizes.triggers)

    def interrupt() -> dict[str, Any]:
        from benchlib import hints

        return hints.run_interrupts(tmp, reps=sizes.interrupt_reps, transport="webrtc")

    def interrupt_websocket() -> dict[str, Any]:
        from benchlib import hints

        return hints.run_interrupts(tmp, reps=sizes.interrupt_reps, transport="websocket")

    def cpu() -> dict[str, Any]:
        from benchlib import cpu

        return cpu.run(tmp, window=sizes.cpu_window_s, rounds=sizes.cpu_rounds)

    def dead_link() -> dict[str, Any]:
        if not sizes.dead_link_freezes:
            return {"skipped": "not measured in --quick: each freeze holds the server for ~5 s"}
        from benchlib import deadlink

        return deadlink.run(tmp, freezes=sizes.dead_link_freezes)

    def meeting() -> dict[str, Any]:
        from benchlib import meeting

        return meeting.run(tmp, minutes=sizes.meeting_minutes)

    def startup() -> dict[str, Any]:
        from benchlib import startup

        return startup.run(tmp, samples=sizes.startup_samples)

    def cost() -> dict[str, Any]:
        from benchlib import cost

        return cost.run()

    def them_capture() -> dict[str, Any]:
        from benchlib import them

        return them.run_capture(frames=sizes.them_frames)

    def cpu_them() -> dict[str, Any]:
        if sizes.cpu_rounds < 2:
            return {"skipped": "not measured in --quick: a 30 s window of both channels"}
        from benchlib import them

        return them.run_cpu(tmp, window=sizes.cpu_window_s)

    def them_ordering() -> dict[str, Any]:
        from benchlib import them

        return them.run_ordering(turns=sizes.ordering_turns)

    def them_cost() -> dict[str, Any]:
        from benchlib import them

        return them.run_cost()

    def echo() -> dict[str, Any]:
        from benchlib import echo

        return echo.run_device(sizes.echo_seconds)

    def echo_drift() -> dict[str, Any]:
        from benchlib import echo

        return echo.run_drift(sizes.drift_seconds)

    def echo_interrupt() -> dict[str, Any]:
        from benchlib import echo

        return echo.run_interrupt(tmp, sizes.echo_interrupt_rounds)

    def context_cache() -> dict[str, Any]:
        from benchlib import context_cache

        return context_cache.run(tmp)

    def ctl() -> dict[str, Any]:
        from benchlib import ctl

        return ctl.run(tmp, samples=sizes.ctl_samples)

    def hotkeys() -> dict[str, Any]:
        from benchlib import hotkeys

        return hotkeys.run(tmp, presses=sizes.hotkey_presses)

    def local() -> dict[str, Any]:
        from benchlib import local

        return local.run(tmp, triggers=sizes.local_triggers, window=sizes.local_window_s)

    return {
        "connect": connect,
        "connect_websocket": connect_websocket,
        "fallback": fallback,
        "trigger": trigger,
        "interrupt": interrupt,
        "interrupt_websocket": interrupt_websocket,
        "cpu": cpu,
        "dead_link": dead_link,
        "meeting": meeting,
        "startup": startup,
        "cost": cost,
        "them_capture": them_capture,
        "cpu_them": cpu_them,
        "them_ordering": them_ordering,
        "them_cost": them_cost,
        "echo": echo,
        "echo_drift": echo_drift,
        "echo_interrupt": echo_interrupt,
        "context_cache": context_cache,
        "ctl": ctl,
        "hotkeys": hotkeys,
        "local": local,
    }


BENCH_NAMES = (
    "connect",
    "connect_websocket",
    "fallback",
    "trigger",
    "interrupt",
    "interrupt_websocket",
    "cpu",
    "dead_link",
    "meeting",
    "startup",
    "cost",
    "them_capture",
    "cpu_them",
    "them_ordering",
    "them_cost",
    "echo",
    "echo_drift",
    "echo_interrupt",
    "context_cache",
    "ctl",
    "hotkeys",
    "local",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="voicecoach benchmarks with budgets (method: BENCHMARKS.md)"
    )
    parser.add_argument("--json", type=Path, default=Path("bench.json"), metavar="PATH", help="default: bench.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument(
        "--quick", action="store_true", help="few samples of everything but dead_link (a smoke test, ~80 s)"
    )
    parser.add_argument(
        "--only", metavar="NAMES", help=f"comma-separated subset of: {', '.join(BENCH_NAMES)}", default=""
    )
    return parser


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCH_NAMES)
    unknown = sorted(set(names) - set(BENCH_NAMES))
    if unknown:
        print(f"scripts/bench: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCH_NAMES)}")
        return 2
    try:
        import voicecoach.runner  # noqa: F401  # fail early and clearly when run outside the project's venv
    except ImportError as exc:
        print(f"scripts/bench: cannot import voicecoach with {sys.executable} ({exc}); activate the venv or set PYTHON")
        return 2
    sizes = QUICK if args.quick else FULL
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    machine = _machine()
    with tempfile.TemporaryDirectory(prefix="voicecoach-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        make_hermetic(tmp)
        benches = _benches(sizes, tmp)
        for name in names:
            print(f"running {name} ...", flush=True)
            started = time.monotonic()
            try:
                results[name] = benches[name]()
            except Exception as exc:  # one broken bench must not hide the others' figures
                failures[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            timings[name] = round(time.monotonic() - started, 1)
    rows = check(results)
    document = {
        "machine": machine,
        "quick": args.quick,
        "sizes": sizes.__dict__,
        "seconds_per_bench": timings,
        "figures": results,
        "budgets": rows,
        "failures": failures,
        # A budget whose figure was not measured here (said why) is neither met nor missed.
        "all_budgets_met": all(r["pass"] for r in rows if not r.get("skipped")) and not failures,
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print()
    print(figures_table(results))
    print()
    print(budget_table(rows))
    for name, why in failures.items():
        print(f"FAILED {name}: {why}")
    print(f"\nfigures written to {args.json} ({sum(timings.values()):.0f} s)")
    if failures:
        return 2
    if args.check and not document["all_budgets_met"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
