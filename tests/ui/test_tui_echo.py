"""The status bar says whether the microphone is echo-cancelled ("echo: on", "echo: off", "echo: muting")."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_fakes import SessionFactory, wait_until

from voicecoach.coach.actions import LinkUp, Metric, StatusChanged
from voicecoach.coach.state import State
from voicecoach.config import Settings
from voicecoach.ui.tui import CoachApp
from voicecoach.ui.tui_view import StatusModel
from voicecoach.ui.view import VoiceOutput

S = State


def live_status(echo: str | None) -> StatusModel:
    status = StatusModel(model="gpt-realtime-1.5", voice=VoiceOutput("device"), echo=echo)
    status.on_state(S.LISTENING)
    status.on_link(LinkUp("webrtc"))
    status.on_metric(Metric("hint.trigger_to_audible_ms", 230.0))
    status.on_metric(Metric("response.cost_usd", 0.0074))
    return status


def test_the_label_sits_after_the_voice_and_only_when_given() -> None:
    full = live_status("echo: on").render().plain
    assert "│ voice → speakers │ echo: on │ gpt-realtime-1.5 │ cost $0.0074" in full
    assert "echo" not in live_status(None).render().plain


@pytest.mark.parametrize(("label", "style"), [("echo: on", ""), ("echo: off", "dim"), ("echo: muting", "yellow")])
def test_the_fallback_stands_out(label: str, style: str) -> None:
    line = live_status(label).render()
    start = line.plain.index(label)
    styles = {str(span.style) for span in line.spans if span.start <= start and span.end >= start + len(label)}
    assert styles == ({style} if style else set()), styles


def test_at_80_columns_the_label_outlasts_the_voice_and_the_latency() -> None:
    line = live_status("echo: muting").render(width=80).plain
    assert line == " ● connected │ WebRTC │ ◉ listening ○ speaking ○ muted │ echo: muting │ $0.0074"
    assert "echo" not in live_status("echo: on").render(width=70).plain  # then it goes, before the transport
    assert "WebRTC" in live_status("echo: on").render(width=70).plain


async def test_the_app_shows_the_label_it_is_given(tmp_path: Path) -> None:
    factory = SessionFactory()
    app = CoachApp(Settings(model="m"), factory, tmp_path / "config.toml", linger_s=0, echo_label="echo: on")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: factory.run is not None)
        assert factory.run is not None
        factory.run.push(StatusChanged(S.CONNECTING, S.DISCONNECTED), StatusChanged(S.LISTENING, S.CONNECTING))
        await wait_until(pilot, lambda: "● connected" in app.status_bar.text)
        assert "echo: on" in app.status_bar.text, app.status_bar.text


async def test_without_a_label_the_bar_says_nothing_of_echo(tmp_path: Path) -> None:
    factory = SessionFactory()
    app = CoachApp(Settings(model="m"), factory, tmp_path / "config.toml", linger_s=0)
    async with app.run_test(size=(120, 24)) as pilot:
        await wait_until(pilot, lambda: factory.run is not None and "disconnected" in app.status_bar.text)
        assert "echo" not in app.status_bar.text, app.status_bar.text
