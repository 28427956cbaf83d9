"""When device audio happened: DeviceSource.frame_time and DeviceSink.played (the echo canceller's clocks).

The first tests convert PortAudio's stream times by hand (fake ``time_info`` objects: only the attributes
PortAudio's struct has); the others run real streams on the private PulseAudio daemon (see pulse.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from types import SimpleNamespace

import numpy as np
import pytest
from audiofakes import BOUND_S, tone, wait_for

from voicecoach.audio.devices import DeviceSink, DeviceSource, _adc_time, _dac_time, resolve_device
from voicecoach.audio.frames import Pcm

NOW = 500.0  # time.monotonic() inside the callback
STREAM_NOW = 1_796_184_955.19  # PortAudio's clock for the same moment (on ALSA: wall-clock-like, unrelated)


def info(current: float, adc: float = 0.0, dac: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(currentTime=current, inputBufferAdcTime=adc, outputBufferDacTime=dac)


def test_adc_time_is_the_callbacks_time_less_the_hosts_capture_delay() -> None:
    assert _adc_time(info(STREAM_NOW, adc=STREAM_NOW - 0.0103), NOW) == pytest.approx(NOW - 0.0103, abs=1e-6)
    assert _adc_time(info(STREAM_NOW, adc=STREAM_NOW), NOW) == pytest.approx(NOW)


def test_adc_time_is_unknown_when_the_host_does_not_say() -> None:
    assert _adc_time(info(0.0, adc=0.0), NOW) is None  # hosts that fill no times
    assert _adc_time(info(0.0, adc=STREAM_NOW), NOW) is None
    assert _adc_time(info(STREAM_NOW, adc=0.0), NOW) is None
    assert _adc_time(info(STREAM_NOW, adc=STREAM_NOW + 0.01), NOW) is None  # captured in the future: nonsense


def test_dac_time_is_the_callbacks_time_plus_the_hosts_playout_delay() -> None:
    assert _dac_time(info(STREAM_NOW, dac=STREAM_NOW + 0.018), NOW, 0.015) == pytest.approx(NOW + 0.018, abs=1e-6)
    assert _dac_time(info(STREAM_NOW, dac=STREAM_NOW), NOW, 0.015) == pytest.approx(NOW)


def test_dac_time_falls_back_to_the_streams_latency() -> None:
    assert _dac_time(info(0.0, dac=0.0), NOW, 0.015) == NOW + 0.015
    assert _dac_time(info(0.0, dac=STREAM_NOW), NOW, 0.015) == NOW + 0.015
    assert _dac_time(info(STREAM_NOW, dac=STREAM_NOW - 0.01), NOW, 0.015) == NOW + 0.015  # in the past: nonsense


@pytest.mark.usefixtures("virtual_audio")
async def test_device_frames_carry_their_capture_time() -> None:
    """``frame_time``: increasing, 20 ms apart (the frames are contiguous), and before the frame could be read:
    its last sample was captured no later than the callback that completed it."""
    source = DeviceSource(resolve_device(None, "input"))
    try:
        seen: list[tuple[float, float, float]] = []
        async with asyncio.timeout(BOUND_S):
            for _ in range(30):
                await source.read()
                assert source.frame_time is not None and source.last_frame_at is not None
                seen.append((source.frame_time, source.last_frame_at, time.monotonic()))
    finally:
        source.close()
    began = np.array([s[0] for s in seen])
    steps = np.diff(began)
    assert (steps > 0).all()
    assert abs(float(np.median(steps)) - 0.020) < 0.001 and (np.abs(steps - 0.020) < 0.005).all(), steps
    for frame_time, completed_at, read_at in seen:
        assert frame_time + 0.020 <= completed_at + 0.001 <= read_at + 0.001
    assert source.dropped == 0


class StampedDeque(deque[tuple[Pcm, float]]):
    """``DeviceSink.played`` that also notes when each block was handed over (right after the callback's own
    clock reading): the block's dac time must come after it."""

    def __init__(self) -> None:
        super().__init__(maxlen=1024)
        self.stamps: deque[float] = deque(maxlen=1024)

    def append(self, item: tuple[Pcm, float]) -> None:
        self.stamps.append(time.monotonic())
        super().append(item)


@pytest.mark.usefixtures("virtual_audio")
async def test_the_sink_hands_over_what_it_played_with_its_dac_time() -> None:
    sink = DeviceSink(resolve_device(None, "output"))
    try:
        await asyncio.sleep(0.3)  # the stream's start-up, when its buffer is still empty (dac = now), is over
        played = StampedDeque()
        sink.played = played
        sink.write(tone(400, 1000, sink.rate, channels=sink.channels))
        await wait_for(lambda: sum(b.shape[0] for b, _ in list(played)) >= 0.6 * sink.rate, what="600 ms of blocks")
    finally:
        sink.close()
    blocks = list(played)
    stamps = list(played.stamps)[: len(blocks)]
    assert all(b.ndim == 2 and b.shape[1] == sink.channels for b, _ in blocks)
    assert sum(int(np.abs(b).max() > 1000) for b, _ in blocks) > 0, "the tone is not among the blocks"
    dac = np.array([t for _, t in blocks])
    assert (np.diff(dac) > 0).all()
    ahead = dac - np.array(stamps)
    assert (ahead > -0.001).all(), ahead  # (an underflow on a busy machine leaves the host's buffer empty)
    assert 0 < float(np.median(ahead)) < 0.2
    # Contiguous: each block plays as the previous one ends (to within the host's timing jitter).
    lengths = np.array([b.shape[0] for b, _ in blocks[:-1]]) / sink.rate
    assert float(np.median(np.abs(np.diff(dac) - lengths))) < 0.001
