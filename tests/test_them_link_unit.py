"""The them link's pure parts: when it rolls over, and the gate that keeps the coach's voice off it."""

from __future__ import annotations

import numpy as np

from voicecoach.audio.frames import WIRE_FRAME_SAMPLES, Pcm
from voicecoach.config import Settings
from voicecoach.them_link import GATE_RELEASE_S, GatedSource, RolloverClock, ThemLink


def test_rollover_waits_for_a_pause_then_goes_anyway_near_the_cap() -> None:
    clock = RolloverClock(session_max=100.0, margin=20.0)
    assert not clock.due(1e9)  # no session yet
    clock.opened(1000.0)
    assert clock.next_check(1000.0) == 80.0
    assert not clock.due(1079.9)
    assert clock.due(1080.0)  # the margin has come and nobody is speaking
    clock.open_turns = 1
    assert not clock.due(1094.9)  # someone is: wait for the end of the turn
    assert clock.due(1095.0)  # ... but never past a quarter of the margin before the cap
    clock.opened(2000.0)
    assert clock.open_turns == 0 and not clock.due(2050.0)


class Frames:
    realtime = True

    def __init__(self, frame_time: float | None = None) -> None:
        self.frame_time = frame_time
        self.reads = 0
        self.closed = False

    async def read(self) -> Pcm:
        self.reads += 1
        return np.full(WIRE_FRAME_SAMPLES, 1000, dtype=np.int16)

    def close(self) -> None:
        self.closed = True


async def test_gated_source_drains_its_source_and_sends_silence_while_gated() -> None:
    gated = [False]
    inner = Frames(frame_time=12.5)
    source = GatedSource(inner, lambda: gated[0])
    assert (await source.read()).max() == 1000
    assert source.epoch == 12.5  # the capture time of the session's first frame, as the source says it
    gated[0] = True
    frame = await source.read()
    assert frame.shape == (WIRE_FRAME_SAMPLES,) and not frame.any() and inner.reads == 2
    assert source.frames_gated == 1
    source.restart()
    inner.frame_time = 99.0
    await source.read()
    assert source.epoch == 99.0
    source.close()
    assert inner.closed


def test_the_gate_holds_while_the_coach_sounds_and_a_little_after() -> None:
    now = [0.0]
    link = ThemLink(
        Settings(base_url="http://127.0.0.1:9/v1"),
        Frames(),
        on_message=lambda raw: None,  # type: ignore[arg-type,return-value]  # never called here
        on_sent=lambda wire: None,
        on_notice=lambda text: None,
        clock=lambda: now[0],
        gate=True,
    )
    assert not link.gated()
    link.playback(True, 1.0)
    now[0] = 5.0
    assert link.gated()
    link.playback(False, 5.0)
    now[0] = 5.0 + GATE_RELEASE_S - 0.01
    assert link.gated()
    now[0] = 5.0 + GATE_RELEASE_S
    assert not link.gated()
    ungated = ThemLink(
        Settings(base_url="http://127.0.0.1:9/v1"),
        Frames(),
        on_message=lambda raw: None,  # type: ignore[arg-type,return-value]
        on_sent=lambda wire: None,
        on_notice=lambda text: None,
        clock=lambda: now[0],
    )
    ungated.playback(True, now[0])
    assert not ungated.gated()  # a file or a separate sink needs no gate
