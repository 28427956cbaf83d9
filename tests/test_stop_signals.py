"""A signal during start-up is never lost: the session that registers its stop late is stopped at once.

These are the deterministic halves of ``tests/faults/test_signals_pipes.py``'s timing test: the signal lands in
the window between the loop's own handler and the session's stop being registered (the demo's local server,
the devices), which a SIGTERM at a fixed moment only hits now and then.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from voicecoach import cli
from voicecoach.app import Runs
from voicecoach.audio.files import NullSink, PcmSource
from voicecoach.config import load_settings
from voicecoach.ui.plain import PlainView


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_signal_before_the_stop_is_registered_stops_the_session(sigterm_restored: None) -> None:
    reasons: list[str] = []

    async def start(on_stop: Callable[[Callable[[str], None]], None]) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # let the loop run the handler: nothing is registered yet
            await asyncio.sleep(0)
        stopped = asyncio.Event()

        def stop(reason: str) -> None:
            reasons.append(reason)
            stopped.set()

        on_stop(stop)
        async with asyncio.timeout(5):
            await stopped.wait()
        return 0

    assert cli._run_async(start) == cli.SIGNAL_EXIT
    assert reasons == ["SIGTERM received"]


def test_after_a_run_sigterm_is_still_130_not_the_default_143(sigterm_restored: None) -> None:
    async def start(on_stop: Callable[[Callable[[str], None]], None]) -> int:
        return 0

    assert cli._run_async(start) == 0
    # Closing the loop put SIGTERM back to SIG_DFL; the run put its own start-up handler back.
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass  # the handler runs between bytecodes


async def test_a_runner_made_after_stop_starts_stopped() -> None:
    settings = load_settings(None, {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-test"})
    runs = Runs(settings, PcmSource(np.zeros(4800, dtype=np.int16), 48_000), NullSink(), None)
    runs.stop("SIGTERM received")  # before the UI made its runner
    runner = runs(PlainView())
    async with asyncio.timeout(5):
        report = await runner.run()
    assert report.reason == "SIGTERM received"
    assert report.links == 0  # it never connected
