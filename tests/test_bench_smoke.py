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
CPU_FIGURES = {"client_cpu_percent_of_one_core", "client_cpu_s_per_audio_minute", "server_cpu_percent_of_one_core",
               "client_startup_cpu_s", "utterances_heard", "coach_voiced_s"}  # fmt: skip
EXPECTED: dict[str, set[str]] = {
    "connect": {"phases_ms", "importtime_total_ms", "importtime_by_package_ms"},
    "connect_websocket": {"phases_ms"},
    "fallback": set(),  # its figures, or "skipped" where no network namespace can be made: checked below
    "trigger": {"key_ms", "key_runner_metric_ms", "phrase_ms", "phrase_runner_metric_ms", "phrase_over_wire_ms",
                "pure_coach"},
    "interrupt": {"transport", "file", "device", "measured_on"},
    "interrupt_websocket": {"transport", "file", "device", "measured_on"},
    "cpu": {"webrtc", "websocket", "websocket_minus_webrtc_points"},
    "dead_link": {"skipped"},  # not measured in --quick
    "meeting": {"rss_growth_mb", "rss_start_mb", "rss_end_mb", "event_us_start", "event_us_end",
                "trigger_event_us_start", "trigger_event_us_end", "events", "meeting_minutes"},
    "startup": {"help_wall_ms", "help_heavy_imports", "help_heavy_import_count", "help_import_ms"},
    "cost": {"text", "references", "whole_conversation", "text_growth_ratio", "references_growth_ratio"},
    "them_capture": set(),  # its figures, or "skipped" where no virtual PulseAudio can run
    "cpu_them": {"skipped"},  # not measured in --quick
    "them_ordering": {"turns", "turns_in_transcript", "inversions_over_0_5_s", "inversions_within_0_5_s"},
    "them_cost": {"model", "utterances", "speech_minutes", "them_usd_per_meeting_hour"},
    "echo": set(),  # its figures, or "skipped" where no virtual PulseAudio can run: checked below
    "echo_drift": {"method", "ppm", "erle_db", "erle_first_2_s_db", "erle_worst_1_s_window_db",
                   "cpu_ms_per_10ms_block", "reference_re_anchors", "control_0_ppm"},
    "echo_interrupt": set(),  # likewise
    "context_cache": {"model", "context_tokens", "later_hints", "messages", "price_growth_ratio", "later_over_first"},
    "ctl": {"command", "samples", "missed", "process_start_to_response_create_received_ms", "ctl_process_wall_ms",
            "stop_process_start_to_cancel_received_ms", "import_ms", "heavy_imports", "heavy_import_count"},
    "hotkeys": set(),  # its figures, or "skipped" where Xvfb, xdotool or pynput is missing: checked below
    "local": set(),  # likewise, where the local extra or espeak-ng is missing
}  # fmt: skip
COMMON_PHASES = {"interpreter_ms", "imports_ms", "settings_ms", "token_ms", "session_updated_ms", "other_ms",
                 "after_imports_ms", "total_ms"}  # fmt: skip
PHASES = COMMON_PHASES | {"ice_gathering_ms", "sdp_post_ms", "dtls_sctp_ms"}
WS_PHASES = COMMON_PHASES | {"ws_upgrade_ms", "first_event_ms"}
FALLBACK_FIGURES = {"process_start_to_session_updated_ms", "after_imports_to_session_updated_ms", "phases_ms",
                    "why_shown"}  # fmt: skip
ECHO_PASS_FIGURES = {"reference", "erle_db", "erle_first_2_s_db", "erle_worst_1_s_window_db", "raw_echo_dbfs",
                     "cpu_ms_per_10ms_block", "added_ms", "late_reference_frames", "frames"}  # fmt: skip
ECHO_INTERRUPT_FIGURES = {"phrase_end_to_silent_ms", "phrase_end_to_transcript_ms", "transcript_to_silent_ms",
                          "rounds", "rounds_not_interrupted", "self_turns_while_coach_alone", "user_turns",
                          "server_floor_ms"}  # fmt: skip
LOCAL_FIGURES = {"startup_wall_s", "triggers", "hints_spoken", "utterances_heard",
                 "end_of_speech_to_transcript_ms", "trigger_to_first_audio_ms", "end_of_speech_to_first_audio_ms",
                 "interrupt_to_model_stream_closed_ms", "listening"}  # fmt: skip
INTERRUPT_FIGURES = {"key_ms", "phrase_ms", "phrase_over_wire_ms", "flush_to_silent_ms", "cancel_sent_ms",
                     "runner_metric_ms", "block_ms", "response_cancel_sent", "pull_gap_ms",
                     "rounds_not_silent_within_5_s"}  # fmt: skip


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
        timeout=280,  # every bench once, small: about 2 min here, with the local backend's models and Xvfb
        env={**os.environ, "PYTHON": sys.executable},
        cwd=out.parent,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done, json.loads(out.read_text())


@pytest.mark.timeout(300)  # the module's quick run is set up inside the first test's time
def test_quick_run_has_every_figure(quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    _, doc = quick_run
    assert doc["quick"] is True and doc["failures"] == {}
    figures = doc["figures"]
    assert set(figures) == set(EXPECTED)
    for bench, keys in EXPECTED.items():
        assert keys <= figures[bench].keys(), (bench, keys - figures[bench].keys())
    assert set(figures["connect"]["phases_ms"]) == PHASES
    assert set(figures["connect_websocket"]["phases_ms"]) == WS_PHASES
    fallback = figures["fallback"]
    if "skipped" in fallback:  # no namespace here (not root, no nft...): the output says why, nothing fails
        assert fallback["skipped"].startswith("not measured: ")
    else:
        assert FALLBACK_FIGURES <= fallback.keys() and "WebRTC" in fallback["why_shown"]
    assert figures["dead_link"]["skipped"].startswith("not measured in --quick")
    for transport in ("webrtc", "websocket"):
        assert CPU_FIGURES <= figures["cpu"][transport].keys(), transport
        assert figures["cpu"][transport]["client_cpu_percent_of_one_core"] > 0, transport
    for bench, transport in (("interrupt", "webrtc"), ("interrupt_websocket", "websocket")):
        assert figures[bench]["transport"] == transport
        assert INTERRUPT_FIGURES <= figures[bench]["file"].keys()
        device = figures[bench]["device"]
        if "skipped" in device:  # no PulseAudio/PortAudio here: the file sink stands in, and the output says so
            assert device["skipped"] and figures[bench]["measured_on"] == "file"
        else:
            assert INTERRUPT_FIGURES <= device.keys() and figures[bench]["measured_on"] == "device"
    for n in ("5", "50", "500"):
        assert figures["cost"]["text"][n]["input_tokens"] > 0
    hotkeys = {"press_to_create_ms", "stop_to_cancel_ms", "xdotool_ms", "missed", "presses", "mechanism"}
    for bench, keys in (("echo", {"echo_path", "playout", "monitor"}), ("echo_interrupt", ECHO_INTERRUPT_FIGURES),
                        ("hotkeys", hotkeys), ("local", LOCAL_FIGURES)):  # fmt: skip
        if "skipped" in figures[bench]:  # no PulseAudio here: the output says why, nothing fails
            assert figures[bench]["skipped"].startswith("not measured: ")
        else:
            assert keys <= figures[bench].keys(), (bench, keys - figures[bench].keys())
    if "skipped" not in figures["echo"]:
        for reference in ("playout", "monitor"):
            assert ECHO_PASS_FIGURES <= figures["echo"][reference].keys(), reference
            assert figures["echo"][reference]["frames"] > 0, reference
        assert "reference_behind_at_read_ms" in figures["echo"]["monitor"]
    if "skipped" not in figures["echo_interrupt"]:
        # Every round's phrase was heard as one turn of its own (the echo made none, or they are counted).
        interrupt = figures["echo_interrupt"]
        assert interrupt["user_turns"] == interrupt["rounds"] + interrupt["self_turns_while_coach_alone"]
    # Every repeated figure has samples, and its statistics are finite and ordered.
    found = summaries(figures)
    assert len(found) >= 30
    for s in found:
        assert s["n"] > 0, s
        values = [s["min"], s["median"], s["p95"], s["p99"], s["max"]]
        assert all(math.isfinite(v) for v in values), s
        assert values == sorted(values), s


@pytest.mark.timeout(300)
def test_quick_run_judges_every_budget(quick_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    done, doc = quick_run
    rows = doc["budgets"]
    assert [r["budget"] for r in rows] == [b.name for b in BUDGETS]
    skipped = [r for r in rows if r.get("skipped")]
    judged = [r for r in rows if not r.get("skipped")]
    # Only the dead-link and two-channel CPU budgets (and the fallback's, them capture's and the echo device
    # benches', where no namespace or virtual PulseAudio can be made) may go unjudged.
    maybe = ("fallback", "them_capture", "echo", "echo_interrupt")
    allowed = {"dead_link", "cpu_them"} | {b for b in maybe if "skipped" in doc["figures"][b]}
    assert {b.bench for b in BUDGETS if b.name in {r["budget"] for r in skipped}} <= allowed, skipped
    assert all(r["pass"] is None and r["skipped"].startswith("not measured") for r in skipped), skipped
    assert all(isinstance(r["pass"], bool) and r["limit"] is not None for r in judged), judged
    assert doc["all_budgets_met"] == all(r["pass"] for r in judged)
    for row in rows:  # the printed budget table has a line per budget with its verdict, or why it has none
        ends = (row["skipped"],) if row.get("skipped") else ("pass", "MISS")
        assert any(line.startswith(row["budget"]) and line.endswith(ends) for line in done.stdout.splitlines())


def test_budget_check_passes_and_misses_on_made_up_figures() -> None:
    results = {
        "cpu": {
            "webrtc": {"client_cpu_percent_of_one_core": 14.9},
            "websocket": {"client_cpu_percent_of_one_core": 18.2},  # over 14.9 x 1.15 + 1 = 18.135
        },
        "dead_link": {"skipped": "not measured: no packet socket"},
        "meeting": {"rss_growth_mb": 20.5},
        "interrupt": {"measured_on": "device", "device": {"block_ms": 4.0, "key_ms": {"p95": 8.9}, "phrase_ms": {}}},
    }
    rows = {r["budget"]: r for r in check(results)}
    assert rows["client CPU, full-duplex audio"]["pass"] is True
    relative = rows["client CPU over WebSocket, no worse than WebRTC"]
    assert (relative["limit"], relative["pass"]) == (18.135, False)
    dead = rows["dead link (WebSocket): last packet → reconnecting"]
    assert dead["pass"] is None and dead["skipped"] == "not measured: no packet socket"
    assert rows["RSS growth over the long meeting"]["pass"] is False
    key = rows["interrupt (key) → silent + cancel sent"]
    assert (key["limit"], key["pass"]) == (9.0, True)  # one 4 ms block + 5 ms
    assert rows["interrupt (phrase) → silent + cancel sent"]["pass"] is None  # figure missing: not a pass
    assert "connect after imports" not in rows  # benches that did not run are not judged


def test_echo_budgets_are_floors_and_ceilings_on_made_up_figures() -> None:
    results = {
        "echo": {
            "playout": {"erle_db": 25.0, "cpu_ms_per_10ms_block": 0.6, "added_ms": {"p95": 9.9}},
            "monitor": {"erle_db": 24.9, "added_ms": {"p95": 25.1}},  # one monitor frame + 5 ms: over
        },
        "echo_drift": {"erle_db": 40.0},
        "echo_interrupt": {"phrase_end_to_silent_ms": {"median": 880.0}, "server_floor_ms": 670.0,
                           "self_turns_while_coach_alone": 1, "rounds_not_interrupted": 0},
    }  # fmt: skip
    rows = {r["budget"]: r for r in check(results)}
    assert rows["echo: ERLE after 2 s, loopback 80 ms, our playout"]["pass"] is True  # at the floor: met
    assert rows["echo: ERLE after 2 s, loopback 80 ms, call monitor"]["pass"] is False  # under it: missed
    assert rows["echo: ERLE after 2 s, 200 ppm drift (synthetic)"]["pass"] is True
    assert rows["echo: AEC CPU per 10 ms block"]["pass"] is False
    assert rows["echo: added mic → wire, our playout"]["pass"] is True
    assert rows["echo: added mic → wire, call monitor (live)"]["pass"] is False
    phrase = rows["echo: phrase over the coach → silent"]
    assert (phrase["limit"], phrase["pass"]) == (870.0, False)  # the server's floor + 200 ms
    assert rows["echo: VAD turns from the coach's echo alone"]["pass"] is False
    assert rows["echo: phrases that did not interrupt"]["pass"] is True


def test_the_sniffer_counts_what_the_watchdogs_count() -> None:
    from benchlib.sniff import classify

    def ipv4(proto: int, body: bytes) -> bytes:
        total = 20 + len(body)
        return bytes([0x45, 0]) + total.to_bytes(2, "big") + bytes(5) + bytes([proto]) + bytes(10) + body

    def tcp(payload: bytes) -> bytes:
        return (8765).to_bytes(2, "big") + bytes(10) + bytes([5 << 4]) + bytes(7) + payload

    def udp(payload: bytes) -> bytes:
        return (40000).to_bytes(2, "big") + bytes(6) + payload

    assert classify(ipv4(6, tcp(b"\x81\x05hello"))) == ("tcp", 8765, "data")  # a WebSocket frame
    assert classify(ipv4(6, tcp(b""))) is None  # a bare ACK: the kernel sends it for a stopped process too
    assert classify(ipv4(17, udp(b"\x00\x01rest"))) == ("udp", 40000, "stun")  # ICE consent
    assert classify(ipv4(17, udp(b"\x80\x6frtp"))) == ("udp", 40000, "media")  # RTP
    assert classify(ipv4(17, udp(b"\x17\xfe\xfddtls"))) == ("udp", 40000, "media")  # DTLS (SCTP inside)
    assert classify(b"\x60" + bytes(39)) is None  # IPv6: loopback here is 127.0.0.1
