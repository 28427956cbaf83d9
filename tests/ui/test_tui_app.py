"""CoachApp driven by Textual's Pilot against a fake session (the real runner is tested elsewhere)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from tui_fakes import FakeRun, SessionFactory, msg, wait_until

from voicecoach.coach.actions import Intent, Metric, Notice, Reconnecting, StatusChanged, TranscriptChanged
from voicecoach.coach.state import State
from voicecoach.config import Settings
from voicecoach.errors import SessionError
from voicecoach.ui.tui import CoachApp

S = State


def make_app(tmp_path: Path, factory: SessionFactory, **kwargs: float) -> CoachApp:
    return CoachApp(Settings(model="gpt-test-model"), factory, tmp_path / "config.toml", **kwargs)


async def started(pilot: Pilot[int], factory: SessionFactory) -> FakeRun:
    await wait_until(pilot, lambda: factory.run is not None)
    assert factory.run is not None
    return factory.run


def go_live(session: FakeRun) -> None:
    session.push(StatusChanged(S.CONNECTING, S.DISCONNECTED), StatusChanged(S.LISTENING, S.CONNECTING))


@pytest.fixture
def factory() -> SessionFactory:
    return SessionFactory()


@pytest.fixture
async def running(tmp_path: Path, factory: SessionFactory) -> AsyncIterator[tuple[CoachApp, Pilot[int], FakeRun]]:
    app = make_app(tmp_path, factory, linger_s=0)
    async with app.run_test() as pilot:
        session = await started(pilot, factory)
        yield app, pilot, session


# --- keys -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "intent"),
    [
        ("h", Intent.QUICK_HINT),
        ("g", Intent.FULL_GUIDANCE),
        ("i", Intent.INTERRUPT),
        ("space", Intent.INTERRUPT),
        ("m", Intent.TOGGLE_MUTE),
        ("q", Intent.QUIT),
    ],
)
async def test_each_binding_puts_its_intent(tmp_path: Path, factory: SessionFactory, key: str, intent: Intent) -> None:
    app = make_app(tmp_path, factory, linger_s=0)
    async with app.run_test() as pilot:
        session = await started(pilot, factory)
        go_live(session)
        await wait_until(pilot, lambda: app.status.connection == "connected")
        await pilot.press(key)
        await wait_until(pilot, lambda: not session.intents.empty())
        assert session.intents.get_nowait() == intent
        assert session.intents.empty()
        # A live session is closed by the coach (QUIT → Quit action), not by the app: nothing stopped yet.
        assert session.stop_reasons == []


async def test_q_while_connecting_also_stops_and_the_app_exits_0(tmp_path: Path, factory: SessionFactory) -> None:
    app = make_app(tmp_path, factory, linger_s=60)
    async with app.run_test() as pilot:
        session = await started(pilot, factory)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None)
        assert session.intents.get_nowait() == Intent.QUIT
        assert session.stop_reasons == ["quit"]
    assert app.return_code == 0
    assert app.summary == "session ended: quit · cost $0.0123"


async def test_second_q_stops_the_live_session(tmp_path: Path, factory: SessionFactory) -> None:
    app = make_app(tmp_path, factory, linger_s=60)
    async with app.run_test() as pilot:
        session = await started(pilot, factory)
        go_live(session)
        await wait_until(pilot, lambda: app.status.connection == "connected")
        await pilot.press("q")
        await wait_until(pilot, lambda: not session.intents.empty())
        assert session.stop_reasons == [] and app.is_running
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None)
        assert session.stop_reasons == ["quit"]
    assert app.return_code == 0


async def test_q_exits_when_the_session_is_no_longer_running(tmp_path: Path, factory: SessionFactory) -> None:
    # The session ended on its own; the summary lingers (60 s here) until q.
    app = make_app(tmp_path, factory, linger_s=60)
    async with app.run_test() as pilot:
        session = await started(pilot, factory)
        session.stop("--duration 5 s reached")
        await wait_until(pilot, lambda: app.summary is not None)
        assert app.is_running and app.return_code is None
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None)
        assert session.intents.empty()  # nothing to send it to any more
    assert app.return_code == 0
    assert app.summary is not None and "--duration 5 s reached" in app.summary


async def test_q_escalates_to_cancelling_a_stuck_session(tmp_path: Path) -> None:
    factory = SessionFactory(lambda s: setattr(s, "ignore_stop", True))
    app = make_app(tmp_path, factory, linger_s=60)
    async with app.run_test() as pilot:
        session = await started(pilot, factory)
        go_live(session)
        await wait_until(pilot, lambda: app.status.connection == "connected")
        await pilot.press("q", "q")
        await wait_until(pilot, lambda: session.stop_reasons == ["quit"])
        assert app.is_running and app.run_active  # run() ignored the stop
        await pilot.press("q")  # third: cancel the worker
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1
    assert app.summary == "quit before the session had closed"


# --- session outcome ------------------------------------------------------------------------------------


async def test_a_voicecoach_error_becomes_a_notice_and_its_exit_code(tmp_path: Path) -> None:
    factory = SessionFactory(lambda s: setattr(s, "fail_with", SessionError("the server ended the session: x")))
    app = make_app(tmp_path, factory, linger_s=0)
    async with app.run_test() as pilot:
        session = await started(pilot, factory)
        session.stop("session_expired")
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.return_code == SessionError.exit_code == 4
    assert app.summary == "session failed: the server ended the session: x"
    assert app.report is None


async def test_a_crash_in_the_session_exits_1_without_a_traceback(tmp_path: Path) -> None:
    factory = SessionFactory(lambda s: setattr(s, "fail_with", RuntimeError("bug")))
    app = make_app(tmp_path, factory, linger_s=0)
    async with app.run_test() as pilot:
        session = await started(pilot, factory)
        session.stop("x")
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1
    assert app.summary == "session crashed: RuntimeError: bug"


async def test_a_failing_make_session_is_reported_too(tmp_path: Path) -> None:
    def make(view: object) -> FakeRun:
        raise SessionError("cannot start")

    app = CoachApp(Settings(), make, tmp_path / "c.toml", linger_s=0)
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 4
    assert app.summary == "session failed: cannot start"


# --- transcript -----------------------------------------------------------------------------------------


async def test_transcript_lines_appear_update_in_place_and_mark_tiers(
    running: tuple[CoachApp, Pilot[int], FakeRun],
) -> None:
    app, pilot, session = running
    session.push(TranscriptChanged(msg("u1", "user", "so what is"), final=False))
    await wait_until(pilot, lambda: app.transcript.lines() == ["You: so what is …"])
    session.push(TranscriptChanged(msg("u1", "user", "so what is [b]x[/b], good question", done=True), final=True))
    session.push(TranscriptChanged(msg("r1", "coach", "Say the", tier="quick"), final=False))
    session.push(TranscriptChanged(msg("r1", "coach", "Say the trade-off", tier="quick"), final=False))
    session.push(TranscriptChanged(msg("r2", "coach", "First,", tier="full", done=True, interrupted=True), final=True))
    expected = [
        "You: so what is [b]x[/b], good question",  # markup in speech is text, not style
        "Coach · quick hint: Say the trade-off …",
        "Coach · full guidance: First, [interrupted]",
    ]
    await wait_until(pilot, lambda: app.transcript.lines() == expected)
    session.push(TranscriptChanged(msg("r1", "coach", "Say the trade-off first.", tier="quick", done=True), True))
    await wait_until(
        pilot, lambda: app.transcript.text_of("r1", "coach") == "Coach · quick hint: Say the trade-off first."
    )
    assert len(app.transcript.lines()) == 3
    # A user item and a coach response may share an id string: they are different messages.
    session.push(TranscriptChanged(msg("r1", "user", "same id, other speaker", done=True), final=True))
    await wait_until(pilot, lambda: app.transcript.text_of("r1") == "You: same id, other speaker")
    assert len(app.transcript.lines()) == 4


async def test_transcript_reads_in_the_order_spoken_and_drops_a_retracted_line(
    running: tuple[CoachApp, Pilot[int], FakeRun],
) -> None:
    app, pilot, session = running
    session.push(TranscriptChanged(msg("u1", "user", "Let me think.", done=True, started_at=4.0), final=True))
    session.push(TranscriptChanged(msg("t1", "them", "Why us?", done=True, label="Interviewer", started_at=1.0), True))
    session.push(TranscriptChanged(msg("t2", "them", "say that", started_at=5.0), final=False))
    await wait_until(
        pilot, lambda: app.transcript.lines() == ["Interviewer: Why us?", "You: Let me think.", "Them: say that …"]
    )
    session.push(TranscriptChanged(msg("t2", "them", "", done=True, started_at=5.0), final=True))  # own voice
    await wait_until(pilot, lambda: app.transcript.lines() == ["Interviewer: Why us?", "You: Let me think."])


async def test_long_messages_wrap_and_rewrap_on_resize(running: tuple[CoachApp, Pilot[int], FakeRun]) -> None:
    app, pilot, session = running
    t = app.transcript
    words = " ".join(f"word{n}" for n in range(60))  # about 420 characters
    session.push(TranscriptChanged(msg("u1", "user", words, done=True), final=True))
    session.push(TranscriptChanged(msg("u2", "user", "short", done=True), final=True))
    await wait_until(pilot, lambda: len(t.lines()) == 2 and t.virtual_size.height > 2)
    rows_at_80 = t.virtual_size.height
    assert t.virtual_size.width <= 80
    await pilot.resize_terminal(160, 24)
    await wait_until(pilot, lambda: 2 < t.virtual_size.height < rows_at_80)
    assert t.text_of("u1") == f"You: {words}"


async def test_transcript_keeps_at_most_max_messages(running: tuple[CoachApp, Pilot[int], FakeRun]) -> None:
    app, pilot, session = running
    app.transcript.max_messages = 5
    for n in range(8):
        session.push(TranscriptChanged(msg(f"u{n}", "user", f"line {n}", done=True), final=True))
    await wait_until(pilot, lambda: app.transcript.lines() == [f"You: line {n}" for n in range(3, 8)])
    assert app.transcript.virtual_size.height == 5


async def test_transcript_autoscroll_pauses_when_scrolled_up_and_resumes_at_the_bottom(
    running: tuple[CoachApp, Pilot[int], FakeRun],
) -> None:
    app, pilot, session = running
    t = app.transcript

    def push_lines(start: int, count: int) -> None:
        for n in range(start, start + count):
            session.push(TranscriptChanged(msg(f"u{n}", "user", f"line {n}", done=True), final=True))

    def at_bottom() -> bool:
        return t.max_scroll_y > 0 and t.scroll_y == t.max_scroll_y

    push_lines(0, 60)
    await wait_until(pilot, lambda: len(t.lines()) == 60 and at_bottom())
    assert t.following

    await pilot.press("pageup")  # the transcript has focus
    await wait_until(pilot, lambda: not t.following and t.scroll_y < t.max_scroll_y)
    held = t.scroll_y
    push_lines(60, 20)
    await wait_until(pilot, lambda: len(t.lines()) == 80 and t.max_scroll_y >= held + 20)
    await pilot.pause()
    assert t.scroll_y == held and not t.following  # the reader's place is kept

    await pilot.press("end")
    await wait_until(pilot, lambda: at_bottom() and t.following)
    push_lines(80, 20)
    await wait_until(pilot, lambda: len(t.lines()) == 100 and at_bottom())


# --- status bar -----------------------------------------------------------------------------------------


async def test_indicators_follow_status_changes(running: tuple[CoachApp, Pilot[int], FakeRun]) -> None:
    app, pilot, session = running

    def bar() -> str:
        return str(app.status_bar.content)

    await wait_until(pilot, lambda: "disconnected" in bar())
    session.push(StatusChanged(S.CONNECTING, S.DISCONNECTED))
    await wait_until(pilot, lambda: "● connecting" in bar())
    session.push(StatusChanged(S.LISTENING, S.CONNECTING))
    await wait_until(pilot, lambda: "● connected" in bar())
    assert "◉ listening" in bar() and "○ speaking" in bar() and "○ muted" in bar()
    assert "gpt-test-model" not in bar()  # 80 columns: the model is the first field to give way
    await pilot.resize_terminal(120, 24)
    await wait_until(pilot, lambda: "gpt-test-model" in bar())

    session.push(StatusChanged(S.SPEAKING, S.LISTENING))
    await wait_until(pilot, lambda: "◉ speaking" in bar())
    session.push(StatusChanged(S.MUTED, S.SPEAKING))
    await wait_until(pilot, lambda: "◉ muted" in bar())
    assert "○ speaking" in bar() and "○ listening" in bar()
    session.push(StatusChanged(S.LISTENING, S.MUTED))
    await wait_until(pilot, lambda: "○ muted" in bar() and "◉ listening" in bar())

    session.push(StatusChanged(S.CONNECTING, S.LISTENING))  # connecting again after being live
    await wait_until(pilot, lambda: "● reconnecting" in bar())
    session.push(StatusChanged(S.LISTENING, S.CONNECTING))
    session.push(Reconnecting("connection lost"))
    await wait_until(pilot, lambda: "● reconnecting" in bar())


async def test_status_shows_last_hint_latency_and_cost(running: tuple[CoachApp, Pilot[int], FakeRun]) -> None:
    app, pilot, session = running
    session.push(
        Metric("hint.trigger_to_audible_ms", 812.4, {"tier": "quick"}),
        Metric("hint.trigger_to_send_ms", 3.0),
        Metric("hint.trigger_to_audible_ms", 412.6, {"tier": "full"}),
        Metric("hint.trigger_to_server_audio_ms", 200.0, {"tier": "full"}),  # the server's figure is not the headline
        Metric("response.cost_usd", 0.01, {"total_usd": 0.0345}),
    )
    await wait_until(pilot, lambda: "hint 413 ms" in app.status_bar.text)  # 80 columns: the short label
    assert "$0.0345" in app.status_bar.text
    await pilot.resize_terminal(140, 24)
    await wait_until(pilot, lambda: "hint → audio 413 ms" in app.status_bar.text)
    assert "cost $0.0345" in app.status_bar.text


# --- notices and the event log --------------------------------------------------------------------------


async def test_error_notice_shows_a_notification_and_a_log_line(tmp_path: Path, factory: SessionFactory) -> None:
    app = make_app(tmp_path, factory, linger_s=0)
    async with app.run_test(notifications=True) as pilot:
        session = await started(pilot, factory)
        session.push(Notice("error", "server error (bad_request): nope [x]"), Notice("info", "hint #1 requested"))

        def toasts() -> list[str]:
            return [str(t.render()) for t in app.screen.query("Toast")]  # Toast is not exported by textual.widgets

        await wait_until(pilot, lambda: any("nope [x]" in text for text in toasts()))
        assert not any("requested" in text for text in toasts())  # info notices stay in the log
        kinds = [e.kind for e in app.event_log.entries]
        assert "notice/error" in kinds and "notice/info" in kinds


async def test_event_log_toggles_and_filters(running: tuple[CoachApp, Pilot[int], FakeRun]) -> None:
    app, pilot, session = running
    log = app.event_log
    assert not log.display
    session.push(
        Notice("warning", "slow"), Metric("hint.trigger_to_audible_ms", 400.0), Notice("debug", "session updated")
    )
    await pilot.press("l")
    # The first line says where the coach's voice goes.
    await wait_until(pilot, lambda: log.display and len(log.visible_lines()) == 4)
    log.query_one("#log-filter").focus()
    await pilot.press(*"metric")
    await wait_until(pilot, lambda: log.filter == "metric")
    assert [line.split(maxsplit=2)[2] for line in log.visible_lines()] == ["hint started speaking after 400 ms"]
    await pilot.press("escape")  # Esc leaves the box: the main keys work again
    await wait_until(pilot, lambda: app.focused is app.transcript)
    assert log.filter == "metric"  # the filter itself stays
    await pilot.press("l")
    await wait_until(pilot, lambda: not log.display)


async def test_info_lines_go_to_the_event_log(running: tuple[CoachApp, Pilot[int], FakeRun]) -> None:
    app, pilot, session = running
    session.view.info("connecting to http://127.0.0.1:8765/v1 (model m)")
    session.push(Notice("debug", "session created"))
    await wait_until(pilot, lambda: len(app.event_log.entries) == 3)
    voice, info, debug = app.event_log.entries
    assert (voice.kind, voice.text) == ("info", "the coach's voice goes to the default output device")
    assert (info.kind, info.text, info.t) == ("info", "connecting to http://127.0.0.1:8765/v1 (model m)", None)
    assert (debug.kind, debug.t) == ("notice/debug", 0.0)


async def test_event_log_is_bounded(running: tuple[CoachApp, Pilot[int], FakeRun]) -> None:
    app, pilot, session = running
    session.push(*(Metric("response.input_tokens", float(n)) for n in range(700)))
    await wait_until(pilot, lambda: len(app.event_log.entries) == 500)
    assert app.event_log.entries[-1].text == "response input tokens 699"


# --- burst ------------------------------------------------------------------------------------------------


async def test_a_burst_of_1000_actions_keeps_keys_working(running: tuple[CoachApp, Pilot[int], FakeRun]) -> None:
    app, pilot, session = running
    go_live(session)
    words: list[str] = []
    for n in range(1000):
        if n % 4 == 3:
            session.push(Metric("hint.trigger_to_audible_ms", float(n)))
        else:
            words.append(f"w{n}")
            session.push(TranscriptChanged(msg("r1", "coach", " ".join(words), tier="full"), final=False))
    await pilot.press("h")
    async with asyncio.timeout(5):
        assert await session.intents.get() == Intent.QUICK_HINT
    expected = "Coach · full guidance: " + " ".join(words) + " …"
    await wait_until(pilot, lambda: app.transcript.lines() == [expected])
    assert app.status.hint_latency_ms == 999.0
    assert app.view.pending == 0
