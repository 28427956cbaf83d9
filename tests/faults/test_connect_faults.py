"""Signaling faults: 401 when reconnecting (through the real CLI), and an SDP answer slower than the timeout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_harness import settings_for
from faults_harness import Cli, RecordingView, assert_one_line_error, until, write_wav

from voicecoach.audio.files import PcmSource, WavSink
from voicecoach.audio.frames import WIRE_RATE
from voicecoach.errors import SignalingTimeout
from voicecoach.runner import Runner
from voicecoach.server import RealtimeServer
from voicecoach.server.faults import FaultConfig, Faults, HttpFault

pytestmark = pytest.mark.transports("webrtc")  # client secrets, SDP and ICE are WebRTC's


@pytest.mark.parametrize("endpoint", ["client_secrets", "calls"])
async def test_401_on_reconnect_ends_the_run_with_one_line(endpoint: Any, server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory()
    server.faults.fail(endpoint, status=401, from_request=2)
    wav = write_wav(tmp_path / "in.wav", np.zeros(WIRE_RATE, np.int16))
    cli = await Cli.start(
        "run",
        "--plain",
        "--base-url",
        server.base_url,
        "--ice-host",
        "127.0.0.1",
        "--input-file",
        str(wav),
        "--output-file",
        str(tmp_path / "out.wav"),
        "--duration",
        "30",
    )
    try:
        await cli.line("[listening]", 15)
        assert server.faults.drop_channel(server.calls[0])
        code = await cli.wait(15)
    finally:
        await cli.close()
    line = assert_one_line_error(code, cli.stderr, 3, "refused (HTTP 401)")
    assert cli.count("reconnecting: connection lost") == 1
    # One refused attempt, then the end: a key that is refused is not retried.
    assert server.faults.requests[endpoint] == 2
    assert server.faults.injected[f"http 401 {endpoint}"] == 1
    assert len(server.calls) == 1
    assert "retrying" not in cli.stdout
    step = "client secret request" if endpoint == "client_secrets" else "SDP offer"
    assert step in line


async def test_slow_sdp_answer_is_a_one_line_signaling_timeout(server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(faults=FaultConfig(answer_delay_seconds=1.0))
    settings = settings_for(server, tmp_path, http_timeout=0.3)
    source = PcmSource(np.zeros(WIRE_RATE, np.int16), WIRE_RATE)
    runner = Runner(settings, RecordingView(), source, WavSink(tmp_path / "out.wav"))
    with pytest.raises(SignalingTimeout) as caught:
        await runner.run()
    message = str(caught.value)
    assert "\n" not in message
    assert "no answer to the SDP offer" in message and "within 0.3 s" in message
    assert runner.report.links == 0
    # The server held the answer back, saw that the client had gone, and opened no call for it.
    await until(lambda: server.faults.injected["answer_abandoned"] == 1, 5, "the held answer to be dropped")
    assert server.calls == []
    assert server.faults.requests["client_secrets"] == 1


def test_http_faults_count_requests_and_apply_from_the_nth_for_a_while() -> None:
    faults = Faults(FaultConfig(http=[HttpFault(endpoint="calls", status=503, from_request=2, times=2)]))
    faults.fail("client_secrets", status=429, from_request=3)
    calls = [faults.check("calls") for _ in range(5)]
    assert [c[0] if c else None for c in calls] == [None, 503, 503, None, None]
    secrets = [faults.check("client_secrets") for _ in range(4)]
    assert [c[0] if c else None for c in secrets] == [None, None, 429, 429]
    assert secrets[2] is not None and secrets[2][2] == "insufficient_quota"
    assert faults.requests == {"calls": 5, "client_secrets": 4}
    assert faults.injected == {"http 503 calls": 2, "http 429 client_secrets": 2}
