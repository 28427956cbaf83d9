"""``scripts/bench --quick`` runs end to end and its JSON holds every figure and every budget verdict.

Behaviour only: no figure is compared with its budget here (that is ``scripts/bench --check``), because a
loaded test machine must not fail the suite. The budget logic itself is checked on made-up figures.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib.budgets import BUDGETS, check  # noqa: E402  # scripts/ is not a package on the default path

SUMMARY_KEYS = {"n", "median", "p95", "p99", "min", "max", "mean"}
EXPECTED: dict[str, set[str]] = {
    "connect": {"phases_ms", "importtime_total_ms", "importtime_by_package_ms"},
    "trigger": {"key_ms", "key_runner_metric_ms", "phrase_ms", "phrase_runner_metric_ms", "phrase_over_wire_ms",
                "pure_coach"},
    "interrupt": {"file", "device", "measured_on"},
    "cpu": {"client_cpu_percent_of_one_core", "client_cpu_s_per_audio_minute", "server_cpu_percent_of_one_core",
            "client_startup_cpu_s", "utterances_heard", "coach_voiced_s"},
    "meeting": {"rss_growth_mb", "rss_start_mb", "rss_end_mb", "event_us_start", "event_us_end",
                "trigger_event_us_start", "trigger_event_us_end", "events", "meeting_minutes"},
    "startup": {"help_wall_ms", "help_heavy_imports", "help_heavy_import_count", "help_import_ms"},
    "cost": {"text", "references", "whole_conversation", "text_growth_ratio", "references_growth_ratio"},
}  # fmt: skip
PHASES = {"interpreter_ms", "imports_ms", "settings_ms", "token_ms", "ice_gathering_ms", "sdp_post_ms",
          "dtls_sctp_ms", "session_updated_ms", "other_ms", "after_imports_ms", "total_ms"}  # fmt: skip
INTERRUPT_FIGURES = {"key_ms", "phrase_ms", "phrase_over_wire_ms", "flush_to_silent_ms", "cancel_sent_ms",
                     "runner_metric_ms", "block_ms", "response_cancel_sent", "pull_gap_ms"}  # fmt: skip


def summaries(value: Any) -> list[dict[str, Any]]:
    """Every {n, median, p95, ...} summary nested in ``value``."""
    if isinstance(value, dict) and SUMMARY_KEYS <= value.keys():
        return [value]
    if isinstance(value, dict):
        return [s for inner in value.values() for s in summaries(inner)]
    return []


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    done = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
        env={**os.environ, "PYTHON": sys.executable},
        cwd=out.parent,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done, json.loads(out.read_text())


def test_quick_run_has_every_figure(quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    _, doc = quick_run
    assert doc["quick"] is True and doc["failures"] == {}
    figures = doc["figures"]
    assert set(figures) == set(EXPECTED)
    for bench, keys in EXPECTED.items():
        assert keys <= figures[bench].keys(), (bench, keys - figures[bench].keys())
    assert set(figures["connect"]["phases_ms"]) == PHASES
    assert INTERRUPT_FIGURES <= figures["interrupt"]["file"].keys()
    device = figures["interrupt"]["device"]
    if "skipped" in device:  # no PulseAudio/PortAudio here: the file sink stands in, and the output says so
        assert device["skipped"] and figures["interrupt"]["measured_on"] == "file"
    else:
        assert INTERRUPT_FIGURES <= device.keys() and figures["interrupt"]["measured_on"] == "device"
    for n in ("5", "50", "500"):
        assert figures["cost"]["text"][n]["input_tokens"] > 0
    # Every repeated figure has samples, and its statistics are finite and ordered.
    found = summaries(figures)
    assert len(found) >= 30
    for s in found:
        assert s["n"] > 0, s
        values = [s["min"], s["median"], s["p95"], s["p99"], s["max"]]
        assert all(math.isfinite(v) for v in values), s
        assert values == sorted(values), s


def test_quick_run_judges_every_budget(quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    done, doc = quick_run
    rows = doc["budgets"]
    assert [r["budget"] for r in rows] == [b.name for b in BUDGETS]
    assert all(isinstance(r["pass"], bool) and r["limit"] is not None for r in rows), rows
    assert doc["all_budgets_met"] == all(r["pass"] for r in rows)
    for row in rows:  # the printed budget table has a line per budget with its verdict
        assert any(
            line.startswith(row["budget"]) and line.endswith(("pass", "MISS")) for line in done.stdout.splitlines()
        )


def test_budget_check_passes_and_misses_on_made_up_figures() -> None:
    results = {
        "cpu": {"client_cpu_percent_of_one_core": 14.9},
        "meeting": {"rss_growth_mb": 20.5},
        "interrupt": {"measured_on": "device", "device": {"block_ms": 4.0, "key_ms": {"p95": 8.9}, "phrase_ms": {}}},
    }
    rows = {r["budget"]: r for r in check(results)}
    assert rows["client CPU, full-duplex audio"]["pass"] is True
    assert rows["RSS growth over the long meeting"]["pass"] is False
    key = rows["interrupt (key) → silent + cancel sent"]
    assert (key["limit"], key["pass"]) == (9.0, True)  # one 4 ms block + 5 ms
    assert rows["interrupt (phrase) → silent + cancel sent"]["pass"] is None  # figure missing: not a pass
    assert "connect after imports" not in rows  # benches that did not run are not judged
