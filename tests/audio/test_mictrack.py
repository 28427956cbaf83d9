"""MicTrack: gate, mute, pts continuity, pacing, and source failure."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from audiofakes import BOUND_S, FakeSource

from voicecoach.audio.files import PcmSource
from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, pcm_from_frame
from voicecoach.audio.tracks import MicTrack
from voicecoach.errors import DeviceUnavailable


async def recv(track: MicTrack) -> av.AudioFrame:
    async with asyncio.timeout(BOUND_S):
        return await track.recv()


def check_format(frame: av.AudioFrame, pts: int) -> None:
    assert frame.format.name == "s16" and frame.layout.name == "mono"
    assert frame.sample_rate == 48000 and frame.samples == WIRE_FRAME_SAMPLES
    assert frame.time_base == Fraction(1, 48000) and frame.pts == pts


async def test_gate_closed_sends_silence_and_does_not_touch_the_source() -> None:
    source = FakeSource()
    track = MicTrack(source)
    assert track.kind == "audio" and not track.gate_open
    for i in range(3):
        frame = await recv(track)
        check_format(frame, i * WIRE_FRAME_SAMPLES)
        assert not pcm_from_frame(frame).any()
    assert source.reads == 0
    track.open_gate()
    frame = await recv(track)
    check_format(frame, 3 * WIRE_FRAME_SAMPLES)
    assert source.reads == 1 and np.all(pcm_from_frame(frame) == 1)
    assert track.frames_sent == 4 and track.last_frame_sent_at > 0


async def test_mute_sends_silence_with_continuous_pts_and_keeps_draining() -> None:
    source = FakeSource()
    track = MicTrack(source)
    track.open_gate()
    await recv(track)
    track.muted = True
    muted = [await recv(track) for _ in range(3)]
    assert all(not pcm_from_frame(f).any() for f in muted)
    assert source.reads == 4  # drained while muted
    track.muted = False
    frame = await recv(track)
    assert np.all(pcm_from_frame(frame) == 5)  # the very next source frame, no backlog and no gap
    assert [f.pts for f in [*muted, frame]] == [960, 1920, 2880, 3840]


async def test_realtime_source_paces_the_track() -> None:
    source = FakeSource(realtime=True)
    track = MicTrack(source)
    track.open_gate()
    pending = asyncio.ensure_future(track.recv())
    try:
        await asyncio.sleep(0.05)
        assert not pending.done()  # waits for the device, not for a clock
        source.release()
        async with asyncio.timeout(BOUND_S):
            frame = await pending
    finally:
        pending.cancel()
    assert np.all(pcm_from_frame(frame) == 1)


async def test_non_realtime_source_is_paced_by_the_wall_clock() -> None:
    track = MicTrack(PcmSource(np.ones(48000, dtype=np.int16), 48000))
    track.open_gate()
    start = time.monotonic()
    for _ in range(6):
        await recv(track)
    assert time.monotonic() - start >= 5 * 0.020 - 0.002  # a file must not be sent faster than real time


async def test_a_failing_source_turns_into_silence_and_keeps_the_stream_going() -> None:
    error = DeviceUnavailable("input device 0 (x) stopped")
    track = MicTrack(FakeSource(error=error))
    track.open_gate()
    frames = [await recv(track) for _ in range(3)]
    assert track.source_error is error
    assert [f.pts for f in frames] == [0, 960, 1920]
    assert all(not pcm_from_frame(f).any() for f in frames)


async def test_stopped_track_raises_media_stream_error() -> None:
    track = MicTrack(FakeSource())
    await recv(track)
    track.stop()
    with pytest.raises(MediaStreamError):
        await recv(track)
