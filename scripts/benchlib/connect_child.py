"""One connect sample, in a fresh process: ``python -m benchlib.connect_child SPAWN BASE_URL TMP TRANSPORT``.

Times, on CLOCK_MONOTONIC (shared with the parent, which took SPAWN_TIME just before starting this process):
interpreter start-up, the imports ``voicecoach run`` does, loading settings, then one real session up to
``session.updated`` (phases from ``Runner.report.connect_ms``, the session.update round trip from the
events file) over TRANSPORT (``webrtc``, ``websocket`` or ``auto``). Prints one JSON object (the phases in ms,
plus ``"link"``: the transport the session came up on and why, when it was not the one asked for) and exits.
Nothing from voicecoach is imported before the import phase.
"""

from __future__ import annotations

import time

MAIN_AT = time.monotonic()  # the first thing this module does: the interpreter and site are up

import asyncio  # noqa: E402  # after MAIN_AT on purpose: stdlib imports are part of the measured start-up
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


class _ReadyView:
    """A View that notes when the coach reaches LISTENING (what ``session.updated`` causes)."""

    def __init__(self) -> None:
        self.ready_at: float | None = None
        self.ready = asyncio.Event()
        self.link: dict[str, str] = {}

    def show(self, action: Any, now: float) -> None:
        from voicecoach.coach.actions import LinkUp, StatusChanged
        from voicecoach.coach.state import State

        if isinstance(action, LinkUp):
            self.link = {"transport": action.transport, "why": action.why}
        if isinstance(action, StatusChanged) and action.state is State.LISTENING and self.ready_at is None:
            self.ready_at = time.monotonic()
            self.ready.set()

    def info(self, text: str) -> None:
        pass


def _event_times(events_file: Path) -> dict[str, float]:
    """Seconds (runner clock) when session.update was sent and session.updated received."""
    times: dict[str, float] = {}
    for line in events_file.read_text().splitlines():
        record = json.loads(line)
        kind = record["event"].get("type")
        if (record["dir"], kind) in (("sent", "session.update"), ("received", "session.updated")):
            times.setdefault(kind, record["t"])
    return times


async def _session(
    base_url: str, tmp: Path, transport: str, t_imports: float
) -> tuple[dict[str, float], dict[str, str]]:
    from voicecoach.audio.files import NullSink, PcmSource
    from voicecoach.audio.frames import WIRE_RATE, silence
    from voicecoach.config import load_settings
    from voicecoach.runner import Runner

    events = tmp / f"connect-{time.monotonic_ns()}.jsonl"
    values = {
        "base_url": base_url,
        "ice_hosts": ["127.0.0.1"],
        "plain": True,
        "keep_sessions": False,
        "transport": transport,
    }
    settings = load_settings(None, {**values, "events_file": events})
    t_settings = time.monotonic()
    view = _ReadyView()
    runner = Runner(settings, view, PcmSource(silence(WIRE_RATE), WIRE_RATE), NullSink())
    task = asyncio.create_task(runner.run())
    ready = asyncio.create_task(view.ready.wait())
    try:
        async with asyncio.timeout(20):
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            task.result()  # the session failed: raise its error
            raise RuntimeError("the session ended before session.updated")
    finally:
        ready.cancel()
        runner.stop("sample taken")
        async with asyncio.timeout(10):
            await asyncio.gather(task, ready, return_exceptions=True)
    assert view.ready_at is not None
    phases = dict(runner.report.connect_ms)
    # The link's own session_update_ms is the same round trip as the events file's, timed by the link: keep
    # one of them (the events file's, for continuity), or `other` would count the round trip twice.
    phases.pop("session_update_ms", None)
    marks = _event_times(events)
    phases["session_updated_ms"] = (marks["session.updated"] - marks["session.update"]) * 1000
    phases["settings_ms"] = (t_settings - t_imports) * 1000
    phases["after_imports_ms"] = (view.ready_at - t_imports) * 1000
    # What the named phases do not cover: building the runner, the peer connection and the tracks, scheduling.
    named = sum(v for k, v in phases.items() if k != "after_imports_ms")
    phases["other_ms"] = phases["after_imports_ms"] - named
    phases["ready_at"] = view.ready_at
    return phases, view.link


def main() -> None:
    spawn, base_url, tmp, transport = float(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    t0 = time.monotonic()
    for name in ("voicecoach.cli", "voicecoach.config", "voicecoach.app"):  # what `voicecoach run` imports
        importlib.import_module(name)

    t_imports = time.monotonic()
    phases, link = asyncio.run(_session(base_url, tmp, transport, t_imports))
    ready_at = phases.pop("ready_at")
    out = {
        "interpreter_ms": (MAIN_AT - spawn) * 1000,
        "imports_ms": (t_imports - t0) * 1000,
        **phases,
        "total_ms": (ready_at - spawn) * 1000,
        "link": link,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
