""":class:`voicecoach.control.Controls` on a real session (the runner against the local server, over loopback):
each command acts within the call that gives it, before the caller awaits anything, and says what it did."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from voicecoach.coach.actions import Intent, Interrupted, Send, StatusChanged
from voicecoach.coach.state import State
from voicecoach.control import Controls, Reply
from voicecoach.protocol import client_events as ce
from voicecoach.server import RealtimeServer

sys.path[:0] = [str(Path(__file__).parent / "faults"), str(Path(__file__).parent / "e2e")]

from e2e_harness import meeting  # noqa: E402  # the shared harnesses are not on the default path
from faults_harness import LiveSession, session_items  # noqa: E402

LINE = "Shall we start with the budget?"
LONG_HINT = (
    "Lead with the numbers first, then name the single biggest risk, who owns it, and what you will do about it "
    "before the next review."
)  # about 9 s of speech: still playing when it is stopped


def sent(live: LiveSession, kind: type[ce.ClientEvent]) -> int:
    """How many events of ``kind`` the runner has handed to the link so far."""
    return sum(isinstance(a, Send) and isinstance(a.event, kind) for _, a in live.view.actions)


def received(server: RealtimeServer, type_: str) -> int:
    return sum(isinstance(e, dict) and e.get("type") == type_ for call in server.calls for e in call.events_received)


async def test_a_hint_and_guidance_are_asked_for_within_the_call(server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=["Start with the numbers."])
    async with await LiveSession.start(server, tmp_path, meeting([(LINE, 0.5)])) as live:
        controls = Controls(lambda: live.runner, lambda: "interview")
        await live.ready()
        await live.until(lambda: len(live.lines("You")) == 1, 10, "the first line")

        reply = controls.run("hint")
        # No await in between: the request went out in this very call.
        assert sent(live, ce.ResponseCreate) == 1
        assert reply.ok and reply.line == "quick hint #1 requested" and reply.status is None
        await live.until(lambda: received(server, "response.create") == 1, 5, "the server to get the request")
        await live.until(lambda: len(live.lines("Coach")) == 1 and not live.runner.coach.busy, 10, "the hint")

        reply = controls.run("guide", source="hotkey")
        assert sent(live, ce.ResponseCreate) == 2
        assert reply.ok and reply.line == "full guidance #2 requested"
        await live.until(lambda: len(live.lines("Coach")) == 2 and not live.runner.coach.busy, 10, "the guidance")
        await live.finish()
    [quick, full] = [e for e in server.calls[0].events_received if e["type"] == "response.create"]
    assert LINE in quick["response"]["input"][0]["content"][0]["text"]  # the window: what was said
    assert quick["response"]["max_output_tokens"] < full["response"]["max_output_tokens"]


async def test_stop_cuts_a_speaking_hint_and_the_record_says_ctl(server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=[LONG_HINT])
    async with await LiveSession.start(server, tmp_path, meeting([(LINE, 0.5)])) as live:
        controls = Controls(lambda: live.runner, lambda: None)
        await live.ready()
        assert controls.run("stop").line == "nothing to interrupt"
        assert controls.run("hint").ok
        await live.until(lambda: live.runner.coach.state is State.SPEAKING, 10, "the hint to play")

        reply = controls.run("stop")
        assert reply.ok and reply.line == "interrupted (ctl)"
        assert live.runner.coach.state is State.LISTENING  # within the call
        assert sent(live, ce.OutputAudioBufferClear) == 1
        await live.until(lambda: received(server, "output_audio_buffer.clear") == 1, 5, "the clear at the server")
        await live.finish()
    assert any(isinstance(a, Interrupted) and a.why == "ctl" for _, a in live.view.actions)
    assert "interrupted (ctl)" in live.view.text.getvalue()
    [record] = [i for i in session_items(live.runner) if i["kind"] == "interrupt"]
    assert record["why"] == "ctl"
    [hint] = [i for i in session_items(live.runner) if i["kind"] == "hint"]
    assert hint["interrupted"]


async def test_mute_and_unmute_set_the_microphone_and_say_when_it_already_is(
    server_factory: Any, tmp_path: Path
) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE])
    async with await LiveSession.start(server, tmp_path, meeting([(LINE, 0.5)])) as live:
        controls = Controls(lambda: live.runner, lambda: None)
        await live.ready()
        assert controls.run("unmute").line == "already unmuted"

        reply = controls.run("mute")
        assert reply.ok and reply.line.startswith("muted")
        assert live.runner.coach.state is State.MUTED and live.runner.executor.muted  # within the call
        assert controls.run("mute") == Reply(True, "already muted")
        assert (controls.run("status").status or {})["muted"] is True

        reply = controls.run("unmute")
        assert reply.ok and reply.line.startswith("unmuted")
        state: State = live.runner.coach.state  # read again: mypy keeps the narrowing of the assert above
        assert state is State.LISTENING and not live.runner.executor.muted
        await live.finish()
    states = [a.state for _, a in live.view.actions if isinstance(a, StatusChanged)]
    assert states.count(State.MUTED) == 1  # "already muted" moved nothing


async def test_status_says_state_transport_profile_last_hint_and_cost(server_factory: Any, tmp_path: Path) -> None:
    hint = "Start with the numbers: revenue grew twelve percent, then name the risk."
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=[hint])
    profile = ["interview"]
    async with await LiveSession.start(server, tmp_path, meeting([(LINE, 0.5)])) as live:
        controls = Controls(lambda: live.runner, lambda: profile[0])
        await live.ready()
        before = controls.run("status")
        assert before.ok and before.line.startswith("listening · WebRTC · profile interview · no hint yet · $")
        controls.run("hint")
        await live.until(lambda: len(live.lines("Coach")) == 1 and not live.runner.coach.busy, 10, "the hint")
        profile[0] = "meeting"  # the full-screen UI switched it
        after = controls.run("status")
        report_cost = live.runner.coach.cost_usd
        await live.finish()
    assert after.status is not None
    assert after.status["state"] == "listening" and after.status["transport"] == "webrtc"
    assert after.status["profile"] == "meeting" and after.status["muted"] is False
    assert after.status["last_hint"] == hint
    assert after.status["cost_usd"] == round(report_cost, 6) and report_cost > 0
    assert after.line.startswith('listening · WebRTC · profile meeting · last hint "Start with the numbers: rev')
    assert after.line.endswith(f"· ${report_cost:.4f} estimated")
    assert "…" in after.line and len(after.line) < 160  # the hint is shortened on the line, whole in the data


async def test_a_hint_asked_before_the_session_is_up_goes_out_once_it_is(server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=["Yes."])
    live = await LiveSession.start(server, tmp_path, meeting([(LINE, 0.5)]))
    async with live:
        controls = Controls(lambda: live.runner, lambda: None)
        # The task has not run yet: the runner is not even connecting.
        reply = controls.run("hint")
        assert reply.ok and reply.line == "not connected yet: the quick hint is asked for once the session is ready"
        assert controls.run("mute") == Reply(False, "not connected yet: nothing to mute")
        assert controls.run("stop").line == "nothing to interrupt (not connected)"
        assert controls.run("status").line.startswith("disconnected · no profile")
        await live.until(lambda: received(server, "response.create") == 1, 10, "the queued hint at the server")
        assert live.runner.intents.empty()
        await live.finish()


def test_before_the_ui_has_made_a_runner_commands_say_so() -> None:
    controls = Controls(lambda: None, lambda: "study")
    reply = controls.run("hint")
    assert not reply.ok and reply.line == "the session is starting: try again in a moment"
    status = controls.run("status")
    assert status.ok and status.line == "starting · profile study · no hint yet · $0.0000 estimated"
    assert status.status is not None and status.status["state"] == "starting" and status.status["transport"] is None


@pytest.mark.parametrize("command", ["hint", "stop", "mute"])
async def test_a_session_that_is_ending_takes_no_command(server_factory: Any, tmp_path: Path, command: str) -> None:
    server: RealtimeServer = await server_factory()
    async with await LiveSession.start(server, tmp_path, meeting([(LINE, 0.5)])) as live:
        controls = Controls(lambda: live.runner, lambda: None)
        await live.ready()
        live.runner.stop("test over")
        assert controls.run(command) == Reply(False, "the session is ending")
        assert (controls.run("status").status or {})["state"] == "ending"
    assert received(server, "response.create") == 0


def test_an_unknown_command_is_refused() -> None:
    reply = Controls(lambda: None, lambda: None).run("quit")
    assert not reply.ok and "unknown command 'quit'" in reply.line


def test_the_runner_queues_an_intent_while_not_live() -> None:
    """Runner.command's other half, without a loop: nothing is carried out, the intent waits in the queue."""
    from voicecoach.audio.files import NullSink, PcmSource
    from voicecoach.config import load_settings
    from voicecoach.runner import Runner
    from voicecoach.ui.plain import PlainView

    runner = Runner(load_settings(None, {}), PlainView(), PcmSource(meeting([]), 48000), NullSink())
    assert runner.command(Intent.QUICK_HINT, "ctl") is None
    assert runner.intents.get_nowait() is Intent.QUICK_HINT
