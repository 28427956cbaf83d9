"""Fixtures for the audio tests.

``virtual_audio`` (session-scoped) starts the private PulseAudio daemon of :mod:`pulse` once, points this
process at it, and re-initializes PortAudio (which enumerates devices only when it initializes). Tests that
need it skip only when the ``pulseaudio`` binary is absent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pulse
import pytest
from audiofakes import BOUND_S, QueueTrack, StartPlayer

from voicecoach.audio.tracks import Player


@pytest.fixture
async def run_player() -> AsyncIterator[StartPlayer]:
    """Start ``player.run(track)`` as a task owned by the fixture (ended and awaited at teardown)."""
    tasks: list[tuple[asyncio.Task[None], QueueTrack]] = []

    async def start(player: Player, track: QueueTrack) -> asyncio.Task[None]:
        task = asyncio.create_task(player.run(track))
        tasks.append((task, track))
        await asyncio.sleep(0)  # let run() attach to the sink
        return task

    yield start
    for task, track in tasks:
        if not task.done():
            track.end()
            try:
                async with asyncio.timeout(BOUND_S):
                    await task
            except TimeoutError:
                task.cancel()
                raise


@pytest.fixture(scope="session")
def virtual_audio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pulse.VirtualAudio]:
    reason = pulse.missing_reason()
    if reason is not None:
        pytest.skip(reason)
    from voicecoach.audio import devices

    audio = pulse.VirtualAudio(tmp_path_factory.mktemp("pulse"))
    audio.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in audio.env.items():
                mp.setenv(key, value)
            devices.rescan_devices()  # PortAudio must see the daemon that did not exist when it initialized
            yield audio
    finally:
        audio.stop()
        devices.rescan_devices()  # forget the daemon's devices now that its variables are gone
