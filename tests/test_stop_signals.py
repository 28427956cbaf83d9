"""A signal during start-up is never lost: the session that registers its stop late is stopped at once.

These are the deterministic halves of ``tests/faults/test_signals_pipes.py``'s timing test: the signal lands in
the window between the loop's own handler and the session's stop being registered (the demo's local server,
the devices), which a SIGTERM at a fixed moment only hits now and then.
"""

from __future__ import annotations

import asyncio
import gc
import logging
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
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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


def test_after_a_run_its_signals_end_at_once_with_130(sigterm_restored: None) -> None:
    async def start(on_stop: Callable[[Callable[[str], None]], None]) -> int:
        return 0

    assert cli._run_async(start) == 0
    # Closing the loop put Python's defaults back (143 for SIGTERM); the run put the start-up handler back.
    assert signal.getsignal(signal.SIGTERM) is cli._exit_130
    assert signal.getsignal(signal.SIGINT) is cli._exit_130


async def test_a_runner_made_after_stop_starts_stopped() -> None:
    settings = load_settings(None, {"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-test"})
    runs = Runs(settings, PcmSource(np.zeros(4800, dtype=np.int16), 48_000), NullSink(), None)
    runs.stop("SIGTERM received")  # before the UI made its runner
    runner = runs(PlainView())
    async with asyncio.timeout(5):
        report = await runner.run()
    assert report.reason == "SIGTERM received"
    assert report.links == 0  # it never connected


async def test_an_aiortc_task_failing_after_its_close_is_not_printed(caplog: pytest.LogCaptureFixture) -> None:
    """A stop while ICE connects: a task aiortc started itself fails on the closed transport, unawaited, and
    asyncio would print its traceback. The same failure here, on a real aiortc transport, made on purpose (the
    moment inside a real connect, mid-DTLS, is too narrow to hit on demand)."""
    from aiortc import RTCIceGatherer, RTCIceParameters, RTCIceTransport

    from voicecoach.tasks import quiet_aiortc_orphans

    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    quiet_aiortc_orphans(loop)
    caplog.set_level(logging.DEBUG)
    try:
        transport = RTCIceTransport(RTCIceGatherer())
        await transport.stop()
        orphan = asyncio.ensure_future(transport.start(RTCIceParameters(usernameFragment="u", password="p" * 22)))
        await asyncio.wait([orphan])  # failed: "RTCIceTransport is closed"; nobody asks for its result
        del orphan
        gc.collect()  # an unretrieved task exception is reported when the task is collected
        await asyncio.sleep(0)
        # Anything else still goes to asyncio's own report.
        other = asyncio.ensure_future(_fail())
        await asyncio.wait([other])
        del other
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    demoted = [r.getMessage() for r in caplog.records if r.name == "voicecoach.tasks"]
    reported = [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert len(demoted) == 1 and "RTCIceTransport.start" in demoted[0], demoted
    assert len(reported) == 1 and "never retrieved" in reported[0], reported


async def _fail() -> None:
    raise RuntimeError("a failure of ours")
