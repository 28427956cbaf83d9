"""Ctrl-C in the full-screen UI: one press quits (no "press ctrl+q" toast), the session still ends cleanly, and
the app tells its caller (exit code 130, ``quit_by_interrupt``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input
from tui_fakes import FakeRun, SessionFactory, wait_until

from voicecoach.coach.actions import StatusChanged
from voicecoach.coach.state import State
from voicecoach.config import Settings
from voicecoach.ui.tui import INTERRUPTED_EXIT, CoachApp
from voicecoach.ui.tui_screens import SettingsScreen

S = State


def make_app(tmp_path: Path, factory: SessionFactory) -> CoachApp:
    return CoachApp(Settings(model="gpt-test-model"), factory, tmp_path / "config.toml", linger_s=60)


async def live(pilot: Pilot[int], app: CoachApp, factory: SessionFactory) -> FakeRun:
    await wait_until(pilot, lambda: factory.run is not None)
    session = factory.run
    assert session is not None
    session.push(StatusChanged(S.CONNECTING, S.DISCONNECTED), StatusChanged(S.LISTENING, S.CONNECTING))
    await wait_until(pilot, lambda: app.status.connection == "connected")
    return session


def toasts(app: CoachApp) -> list[str]:
    return [str(t.render()) for t in app.screen.query("Toast")]  # Toast is not exported by textual.widgets


@pytest.mark.parametrize("where", ["main", "log filter", "settings dialog"])
async def test_one_ctrl_c_stops_the_session_and_exits_130(tmp_path: Path, where: str) -> None:
    factory = SessionFactory()
    app = make_app(tmp_path, factory)
    async with app.run_test(notifications=True) as pilot:
        session = await live(pilot, app, factory)
        if where == "log filter":  # an Input binds ctrl+c to copy: ours must come first
            await pilot.press("l")
            await wait_until(pilot, lambda: app.event_log.display)
            app.event_log.query_one("#log-filter", Input).focus()
            await wait_until(pilot, lambda: isinstance(app.focused, Input))
        elif where == "settings dialog":
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: app.return_code is not None)
        assert not any("quit" in text.casefold() for text in toasts(app)), toasts(app)
        assert session.intents.empty()  # stopped directly, not via the coach's QUIT
    assert session.stop_reasons == ["Ctrl-C"]  # once: the session saves and prices what it has
    assert app.return_code == INTERRUPTED_EXIT == 130
    assert app.quit_by_interrupt
    assert app.report is session.report
    assert app.summary == "session ended: Ctrl-C · cost $0.0123"


async def test_ctrl_c_again_cancels_a_session_stuck_while_closing(tmp_path: Path) -> None:
    factory = SessionFactory(lambda s: setattr(s, "ignore_stop", True))
    app = make_app(tmp_path, factory)
    async with app.run_test() as pilot:
        session = await live(pilot, app, factory)
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: session.stop_reasons == ["Ctrl-C"])
        assert app.is_running and app.run_active  # run() ignored the stop
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 130
    assert app.summary == "quit before the session had closed"


async def test_ctrl_c_after_the_session_ended_exits_at_once(tmp_path: Path) -> None:
    factory = SessionFactory()
    app = make_app(tmp_path, factory)
    async with app.run_test() as pilot:
        session = await live(pilot, app, factory)
        session.stop("--duration 5 s reached")
        await wait_until(pilot, lambda: app.summary is not None)
        assert app.is_running  # the summary lingers
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 130 and app.quit_by_interrupt


async def test_q_is_not_an_interrupt(tmp_path: Path) -> None:
    factory = SessionFactory()
    app = make_app(tmp_path, factory)
    async with app.run_test() as pilot:
        session = await live(pilot, app, factory)
        await pilot.press("q", "q")
        await wait_until(pilot, lambda: app.return_code is not None)
    assert session.stop_reasons == ["quit"]
    assert app.return_code == 0 and not app.quit_by_interrupt
