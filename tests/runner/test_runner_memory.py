"""The runner's lifecycle against an in-memory transport: no WebRTC, no sockets, the test plays the server.

Reconnect and backoff, rollover at a quiet moment and at the hard limit, stop while connecting, and an
interrupt that must not wait for a slow disk. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from memory_transport import MemoryPeer
from pydantic import SecretStr

from voicecoach.audio.files import NullSink, PcmSource
from voicecoach.audio.frames import WIRE_RATE, silence
from voicecoach.coach.actions import Action, Intent, Reconnecting
from voicecoach.config import load_settings
from voicecoach.errors import TransportError
from voicecoach.runner import Runner, RunReport
from voicecoach.store import SessionStore


class Recorder:
    def __init__(self) -> None:
        self.actions: list[Action] = []
        self.lines: list[str] = []

    def show(self, action: Action, now: float) -> None:
        self.actions.append(action)

    def info(self, text: str) -> None:
        self.lines.append(text)


async def _key() -> SecretStr:
    return SecretStr("ek_memory")


def make_runner(peer: MemoryPeer, tmp_path: Path, store: SessionStore | None = None, **overrides: Any) -> Runner:
    settings = load_settings(None, {"base_url": "http://127.0.0.1:9/v1", "keep_sessions": False, **overrides})
    return Runner(
        settings,
        Recorder(),
        PcmSource(silence(WIRE_RATE), WIRE_RATE),
        NullSink(),
        store=store,
        factory=peer.factory,
        credential=_key,
    )


@pytest.fixture
async def peer() -> AsyncIterator[MemoryPeer]:
    yield MemoryPeer()


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def finish(runner: Runner, task: asyncio.Task[RunReport]) -> RunReport:
    runner.stop("test over")
    async with asyncio.timeout(5):
        return await task


async def test_a_link_is_configured_and_the_mic_opens_on_session_updated(peer: MemoryPeer, tmp_path: Path) -> None:
    runner = make_runner(peer, tmp_path)
    task = asyncio.create_task(runner.run())
    await peer.wait_for("session.update")
    await until(lambda: peer.current.uplink.gate_open)
    report = await finish(runner, task)
    assert report.links == 1 and report.transport == "memory"
    assert report.reason == "test over"


async def test_a_lost_link_is_reopened_after_backoff_and_keeps_the_mute(peer: MemoryPeer, tmp_path: Path) -> None:
    runner = make_runner(peer, tmp_path)
    task = asyncio.create_task(runner.run())
    await until(lambda: peer.links and peer.current.uplink.gate_open)
    runner.intents.put_nowait(Intent.TOGGLE_MUTE)
    await until(lambda: peer.current.uplink.muted)
    peer.refuse = TransportError("no route")  # the first retry fails: the backoff runs
    peer.drop()
    await until(lambda: peer.connect_attempts >= 2)
    peer.refuse = None
    await until(lambda: len(peer.links) == 2 and peer.current.uplink.gate_open)
    assert peer.current.uplink.muted, "a reconnect must keep the user's mute"
    report = await finish(runner, task)
    assert report.links == 2
    reconnecting = [a for a in runner.view.actions if isinstance(a, Reconnecting)]  # type: ignore[attr-defined]
    assert any("peer vanished" in a.reason for a in reconnecting)
    assert any("reconnect failed" in a.reason for a in reconnecting)


async def test_rollover_waits_for_a_user_turn_to_be_transcribed(peer: MemoryPeer, tmp_path: Path) -> None:
    # session_max 2 s, margin 1 s: due 1 s after the link opened, regardless at 1.5 s.
    runner = make_runner(peer, tmp_path, session_max_seconds=2.0, rollover_margin_seconds=1.0)
    task = asyncio.create_task(runner.run())
    await until(lambda: peer.links and peer.current.uplink.gate_open)
    opened = asyncio.get_running_loop().time()
    peer.push({"type": "input_audio_buffer.speech_started", "event_id": "s1", "item_id": "u1", "audio_start_ms": 0})
    await asyncio.sleep(1.2)  # past due, before the hard limit: the open turn holds the rollover back
    assert len(peer.links) == 1
    peer.push(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "event_id": "c1",
            "item_id": "u1",
            "content_index": 0,
            "transcript": "The budget is fine.",
        }
    )
    await until(lambda: len(peer.links) == 2, timeout=2)
    assert asyncio.get_running_loop().time() - opened < 1.5 + 0.3  # it went at the quiet moment, not the limit
    report = await finish(runner, task)
    assert report.links == 2
    assert "You: The budget is fine." in report.transcript


async def test_rollover_goes_at_the_hard_limit_when_a_turn_never_ends(peer: MemoryPeer, tmp_path: Path) -> None:
    runner = make_runner(peer, tmp_path, session_max_seconds=2.0, rollover_margin_seconds=1.0)
    task = asyncio.create_task(runner.run())
    await until(lambda: peer.links and peer.current.uplink.gate_open)
    peer.push({"type": "input_audio_buffer.speech_started", "event_id": "s1", "item_id": "u1", "audio_start_ms": 0})
    await asyncio.sleep(1.1)
    assert len(peer.links) == 1
    await until(lambda: len(peer.links) == 2, timeout=2)
    await finish(runner, task)


async def test_stop_while_connecting_ends_at_once(peer: MemoryPeer, tmp_path: Path) -> None:
    peer.hold.clear()  # connects hang
    runner = make_runner(peer, tmp_path)
    task = asyncio.create_task(runner.run())
    await until(lambda: peer.connect_attempts == 1)
    report = await finish(runner, task)
    assert report.links == 0 and peer.links == []


async def test_duration_is_enforced_while_reconnecting(peer: MemoryPeer, tmp_path: Path) -> None:
    runner = make_runner(peer, tmp_path, duration=1.0)
    task = asyncio.create_task(runner.run())
    await until(lambda: peer.links and peer.current.uplink.gate_open)
    peer.hold.clear()  # every reconnect hangs from now on
    peer.drop()
    async with asyncio.timeout(3):
        report = await task  # ends by itself at the duration, although it never reconnected
    assert report.reason == "--duration 1 s reached"


class SlowStore(SessionStore):
    """Session files whose every append blocks the journal's writer until ``release`` (or 1 s): a stalled disk."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path / "runs")
        self.release = threading.Event()
        self.inside = 0  # appends stuck on the "disk" right now

    def create(self, meta: dict[str, Any]) -> Any:
        file = super().create(meta)
        real = file.append

        def slow(record: Any) -> None:
            self.inside += 1
            try:
                self.release.wait(1.0)
                real(record)
            finally:
                self.inside -= 1

        file.append = slow  # type: ignore[method-assign]  # the fake disk
        return file


async def test_an_interrupt_does_not_wait_for_a_slow_disk(peer: MemoryPeer, tmp_path: Path) -> None:
    store = SlowStore(tmp_path)
    runner = make_runner(peer, tmp_path, store=store)
    task = asyncio.create_task(runner.run())
    await until(lambda: peer.links and peer.current.uplink.gate_open)
    runner.intents.put_nowait(Intent.QUICK_HINT)
    create = await peer.wait_for("response.create")
    metadata = create["response"]["metadata"]
    peer.push({"type": "response.created", "event_id": "r0", "response": {"id": "resp_1", "metadata": metadata}})
    await until(lambda: runner.coach.busy)
    # A finished utterance goes to the journal: its writer is now stuck on the disk.
    peer.push(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "event_id": "c1",
            "item_id": "u1",
            "content_index": 0,
            "transcript": "Fine, go on.",
        }
    )
    await until(lambda: "You: Fine, go on." in runner.report.transcript)
    runner.intents.put_nowait(Intent.INTERRUPT)
    cancel = await peer.wait_for("response.cancel", timeout=0.9)  # well inside the disk's 1 s stall
    assert cancel.get("response_id") == "resp_1"
    # The utterance's write takes 1 s of stalled disk (the header's another): the cancel went out meanwhile.
    assert store.inside == 1, "the cancel was sent only after the disk write finished"
    store.release.set()
    await finish(runner, task)
