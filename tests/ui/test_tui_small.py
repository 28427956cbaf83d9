"""The full-screen UI on small terminals: 80x24 keeps the status bar's essentials and the footer's Help and Quit."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_tui_screenshot import DOCS, svg_text
from tui_fakes import SessionFactory, msg, wait_until

from voicecoach.coach.actions import Metric, StatusChanged, TranscriptChanged
from voicecoach.coach.state import State
from voicecoach.config import Settings
from voicecoach.ui.tui import CoachApp
from voicecoach.ui.view import VoiceOutput

S = State


async def screenshot(tmp_path: Path, size: tuple[int, int], state: State) -> tuple[CoachApp, str, Path]:
    """Run a live session at ``size`` in ``state`` with a hint, a cost and no sound device; its SVG's text."""
    factory = SessionFactory()
    settings = Settings(model="gpt-realtime-1.5")
    app = CoachApp(settings, factory, tmp_path / "config.toml", linger_s=0, voice=VoiceOutput("none"))
    async with app.run_test(size=size, notifications=True) as pilot:
        await wait_until(pilot, lambda: factory.run is not None)
        session = factory.run
        assert session is not None
        session.push(StatusChanged(S.CONNECTING, S.DISCONNECTED), StatusChanged(S.LISTENING, S.CONNECTING))
        if state is not S.LISTENING:
            session.push(StatusChanged(state, S.LISTENING))
        session.push(
            TranscriptChanged(msg("u1", "user", "So how would you shard the orders table? " * 4, done=True), True),
            TranscriptChanged(msg("r1", "coach", "Shard by customer id.", tier="quick", done=True), True),
            Metric("hint.trigger_to_audible_ms", 231.0, {"tier": "quick", "hint": 1}),
            Metric("response.cost_usd", 0.0031, {"total_usd": 0.0074}),
        )
        await wait_until(pilot, lambda: "$0.0074" in app.status_bar.text and len(app.transcript.lines()) == 2)
        await pilot.pause()
        saved = Path(app.save_screenshot(f"small-{size[0]}x{size[1]}.svg", str(tmp_path)))
    return app, svg_text(saved), saved


@pytest.mark.parametrize("state", [S.LISTENING, S.SPEAKING, S.MUTED])
async def test_80x24_keeps_the_status_essentials_and_help_and_quit(tmp_path: Path, state: State) -> None:
    app, text, saved = await screenshot(tmp_path, (80, 24), state)
    bar = app.status_bar.text
    # The first row is the bar as drawn (the SVG drops unstyled single spaces, so compare without spaces).
    assert "".join(text.splitlines()[0].removeprefix("voicecoach").split()) == "".join(bar.split())
    lit = {
        "listening": state is not S.MUTED,
        "speaking": state is S.SPEAKING,
        "muted": state is S.MUTED,
    }
    for name, on in lit.items():
        assert f"{'◉' if on else '○'} {name}" in bar, (name, bar)
    assert "● connected" in bar and "$0.0074" in bar and "hint 231 ms" in bar, bar
    assert "no voice" in bar, bar  # no sound device: said in the bar, and once as a notification
    assert "no sound device: the coach's voice" in text
    footer = text.splitlines()[-1]
    assert "? Help" in footer and "q Quit" in footer, footer
    if os.environ.get("VOICECOACH_WRITE_DOCS") == "1" and state is S.SPEAKING:
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(saved, DOCS / "screenshot-80x24.svg")


async def test_60x20_still_runs_and_keeps_connection_and_quit(tmp_path: Path) -> None:
    app, text, _ = await screenshot(tmp_path, (60, 20), S.LISTENING)
    bar = app.status_bar.text
    assert len(bar) <= 60 and "● connected" in bar and "○ muted" in bar and "$0.0074" in bar, bar
    assert "Shard by customer id." in text
