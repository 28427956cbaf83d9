"""A scripted session rendered to SVG. ``VOICECOACH_WRITE_DOCS=1`` also writes docs/screenshot.svg."""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

from tui_fakes import SessionFactory, msg, wait_until

from voicecoach.coach.actions import Metric, Notice, StatusChanged, TranscriptChanged
from voicecoach.coach.state import State
from voicecoach.config import Settings
from voicecoach.ui.tui import CoachApp

S = State
DOCS = Path(__file__).resolve().parents[2] / "docs"


def svg_text(path: Path) -> str:
    """The visible text of a Textual SVG export, one string (spaces are &#160; there, split by style)."""
    parts = re.findall(r"<text[^>]*>(.*?)</text>", path.read_text(encoding="utf-8"), flags=re.S)
    return html.unescape("".join(parts)).replace("\xa0", " ")


async def test_screenshot_of_a_scripted_session(tmp_path: Path) -> None:
    factory = SessionFactory()
    app = CoachApp(Settings(model="gpt-realtime-1.5"), factory, tmp_path / "config.toml", linger_s=0)
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_until(pilot, lambda: factory.run is not None)
        session = factory.run
        assert session is not None
        session.view.info("connecting to https://api.openai.com/v1 (model gpt-realtime-1.5)")
        session.push(StatusChanged(S.CONNECTING, S.DISCONNECTED), StatusChanged(S.LISTENING, S.CONNECTING))
        script = [
            ("u1", "user", "So how would you shard the orders table?", None, False),
            ("u2", "user", "Hmm, good question.", None, False),
            ("r1", "coach", "Shard by customer id: it keeps each order history on one node.", "quick", False),
            ("u3", "user", "And what about hot customers? Give me guidance.", None, False),
            ("r2", "coach", "Start with the access pattern: most reads are per customer, so", "full", True),
            ("u4", "user", "Got it.", None, False),
        ]
        for item_id, role, text, tier, interrupted in script:
            half = text[: len(text) // 2]
            session.push(TranscriptChanged(msg(item_id, role, half, tier=tier), final=False))  # type: ignore[arg-type]
            session.push(
                TranscriptChanged(msg(item_id, role, text, tier=tier, done=True, interrupted=interrupted), final=True)  # type: ignore[arg-type]
            )
        session.push(
            Metric("hint.trigger_to_send_ms", 2.1, {"tier": "quick"}),
            Metric("hint.trigger_to_server_audio_ms", 301.0, {"tier": "quick", "hint": 1}),
            Metric("hint.trigger_to_audible_ms", 486.0, {"tier": "quick", "hint": 1}),
            Metric("response.cost_usd", 0.0031, {"total_usd": 0.0074}),
            Notice("info", "interrupted (phrase 'got it')"),
            Metric("hint.interrupt_to_silence_ms", 38.5),
        )
        await wait_until(pilot, lambda: len(app.transcript.lines()) == 6)
        await pilot.press("l")
        await wait_until(pilot, lambda: app.event_log.display)
        await pilot.pause()
        saved = Path(app.save_screenshot("voicecoach.svg", str(tmp_path)))

    text = svg_text(saved)
    for needle in (
        "You: So how would you shard the orders table?",
        "Coach · quick hint: Shard by customer id",
        "Coach · full guidance: Start with the access pattern",
        "[interrupted]",
        "● connected",
        "hint → audio 486 ms",
        "cost $0.0074",
        "hint started speaking after 486 ms (quick hint #1)",
        "server started the hint's audio after 301 ms (quick hint #1)",
        "silent after the interrupt in 38 ms",
        "voice → speakers",
        "Quick hint",
        "? Help",
        "q Quit",
    ):
        assert needle in text, needle
    if os.environ.get("VOICECOACH_WRITE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(saved, DOCS / "screenshot.svg")
