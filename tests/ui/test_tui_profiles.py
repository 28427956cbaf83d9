"""Profiles in the terminal UI (issue 15): the status bar names the active one, ``p`` switches it live, the next
hint uses it, and a profile whose context cannot be read is refused with one event-log line."""

from __future__ import annotations

import asyncio
import copy
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from textual.pilot import Pilot
from textual.widgets import Button, OptionList
from tui_fakes import FakeRun, SessionFactory, wait_until

from voicecoach.audio.files import NullSink, PcmSource
from voicecoach.audio.frames import WIRE_RATE, silence
from voicecoach.coach.actions import LinkUp, Metric, StatusChanged
from voicecoach.coach.hints import HINT_KEY
from voicecoach.coach.state import State
from voicecoach.config import load_settings, with_profile
from voicecoach.context import load_context
from voicecoach.runner import Runner
from voicecoach.ui.tui import CoachApp
from voicecoach.ui.tui_screens import ProfileScreen, SettingsScreen
from voicecoach.ui.tui_view import StatusModel
from voicecoach.ui.view import View, VoiceOutput

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runner"))
from memory_transport import MemoryPeer  # tests/runner's in-memory Realtime peer

S = State
CONFIG = """\
[coach]
cooldown_seconds = 0.0

[profiles.terse]
description = "one word"
quick_instructions = "Answer in one word."

[profiles.cv]
context_files = ["cv.md"]

[profiles.lost]
context_files = ["no-such-file.md"]

[profiles.loud]
voice = "verse"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    (tmp_path / "cv.md").write_text("# CV\nTen years of Postgres at Acme.\n")
    return path


async def live(pilot: Pilot[int], app: CoachApp, factory: SessionFactory) -> FakeRun:
    await wait_until(pilot, lambda: factory.run is not None and app.run_active)
    session = factory.run
    assert session is not None
    session.push(StatusChanged(S.CONNECTING, S.DISCONNECTED), StatusChanged(S.LISTENING, S.CONNECTING))
    await wait_until(pilot, lambda: app.status.connection == "connected")
    return session


async def pick(pilot: Pilot[int], app: CoachApp, name: str | None) -> None:
    """Press p, highlight ``name`` in the list (None: no profile) and press Enter."""
    await pilot.press("p")
    await wait_until(pilot, lambda: isinstance(app.screen, ProfileScreen))
    options = app.screen.query_one(OptionList)
    options.highlighted = options.get_option_index(f"profile-{name}" if name else "")
    await pilot.press("enter")
    await wait_until(pilot, lambda: not isinstance(app.screen, ProfileScreen))


def log_lines(app: CoachApp) -> list[str]:
    return [e.text for e in app.event_log.entries]


def test_the_profile_shortens_early_and_stays_at_80_columns() -> None:
    status = StatusModel(model="gpt-realtime-1.5", voice=VoiceOutput("device"), echo="echo: on", profile="interview")
    status.on_state(S.LISTENING)
    status.on_link(LinkUp("webrtc"))
    status.on_metric(Metric("hint.trigger_to_audible_ms", 230.0))
    status.on_metric(Metric("response.cost_usd", 0.0074))
    assert "│ echo: on │ profile interview │ gpt-realtime-1.5 │ cost $0.0074" in status.render().plain
    assert "│ interview │ cost $0.0074" in status.render(width=120).plain  # "profile" went with the model
    at_80 = status.render(width=80).plain
    assert at_80 == " ● connected │ WebRTC │ ◉ listening ○ speaking ○ muted │ interview │ $0.0074", at_80


async def test_the_status_bar_names_the_active_profile_and_hides_none(config: Path) -> None:
    for profile, shown in (("interview", "profile interview"), (None, None)):
        factory = SessionFactory()
        app = CoachApp(load_settings(config, {"profile": profile}), factory, config, linger_s=0)
        async with app.run_test(size=(120, 24)) as pilot:
            await live(pilot, app, factory)
            if shown:
                assert shown in app.status_bar.text, app.status_bar.text
            else:
                assert "profile" not in app.status_bar.text, app.status_bar.text


async def test_p_switches_profile_live_with_its_context(config: Path) -> None:
    settings = load_settings(config, {"profile": "interview"})
    factory = SessionFactory()
    app = CoachApp(settings, factory, config, linger_s=0)
    async with app.run_test(size=(120, 30)) as pilot:
        session = await live(pilot, app, factory)
        await pick(pilot, app, "cv")
        await wait_until(pilot, lambda: "profile cv" in app.status_bar.text)
        switched = "profile cv: the next hint uses it"
        await wait_until(pilot, lambda: any(line.startswith(switched) for line in log_lines(app)))
        cv_context = load_context([config.parent / "cv.md"], 4000)
        assert session.applied == [with_profile(settings, "cv").coach]
        assert session.contexts == [cv_context.text] and "Ten years of Postgres" in cv_context.text
        assert any("cv.md" in line for line in log_lines(app))

        await pick(pilot, app, None)  # back to the base settings: no context any more
        await wait_until(pilot, lambda: len(session.applied) == 2)
        assert session.contexts[-1] == "" and app.settings.profile is None
        await wait_until(pilot, lambda: "profile" not in app.status_bar.text)
        assert session.intents.empty()  # picking in the list sent no intent (Enter, arrows) to the coach


async def test_a_profile_whose_context_cannot_be_read_is_not_switched_to(config: Path) -> None:
    settings = load_settings(config, {"profile": "terse"})
    factory = SessionFactory()
    app = CoachApp(settings, factory, config, linger_s=0)
    async with app.run_test(size=(120, 30)) as pilot:
        session = await live(pilot, app, factory)
        await pick(pilot, app, "lost")
        await wait_until(pilot, lambda: any(line.startswith("profile lost not switched:") for line in log_lines(app)))
        [line] = [line for line in log_lines(app) if line.startswith("profile lost")]
        assert "no-such-file.md" in line and "\n" not in line, line
        assert session.applied == [] and app.settings.profile == "terse"
        assert "profile terse" in app.status_bar.text


async def test_a_profiles_voice_waits_for_the_next_session(config: Path) -> None:
    factory = SessionFactory()
    app = CoachApp(load_settings(config), factory, config, linger_s=0)
    async with app.run_test(size=(120, 30)) as pilot:
        session = await live(pilot, app, factory)
        await pick(pilot, app, "loud")
        await wait_until(pilot, lambda: len(session.applied) == 1)
        later = "voice verse applies from the next run with --profile loud; this run keeps alloy"
        await wait_until(pilot, lambda: later in log_lines(app))
        await pick(pilot, app, None)  # back to the session's own voice: nothing more to say about it
        await wait_until(pilot, lambda: len(session.applied) == 2)
        await pilot.pause()
        assert sum(line.startswith("voice ") for line in log_lines(app)) == 1, log_lines(app)


async def test_an_edit_in_a_profile_stays_with_that_profile(config: Path) -> None:
    factory = SessionFactory()
    app = CoachApp(load_settings(config, {"profile": "terse"}), factory, config, linger_s=0)
    async with app.run_test(size=(120, 30)) as pilot:
        session = await live(pilot, app, factory)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        target = str(screen.query_one("#settings-target").render())
        assert "Editing profile 'terse': saved to [profiles.terse]" in target, target
        screen.set_value("full_window", "7")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        await pick(pilot, app, "interview")
        await pick(pilot, app, "terse")
        await wait_until(pilot, lambda: len(session.applied) == 3)
    edited, interview, terse = session.applied
    assert edited.full_window == 7 and terse.full_window == 7  # kept with terse, as the file now says
    assert interview.full_window == 10  # not carried into another profile
    assert load_settings(config, {"profile": "terse"}).coach.full_window == 7


async def test_the_settings_screen_opens_the_profile_list_unless_there_are_unsaved_changes(config: Path) -> None:
    factory = SessionFactory()
    app = CoachApp(load_settings(config, {"profile": "interview"}), factory, config, linger_s=0)
    async with app.run_test(size=(120, 30)) as pilot:
        await live(pilot, app, factory)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: app.screen.query("#help-text"))
        assert "interview   (p picks another" in str(app.screen.query_one("#help-text").render())
        await pilot.press("escape")
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        screen.set_value("quick_window", "9")
        await pilot.click("#switch-profile")
        await wait_until(pilot, lambda: screen.error == "save or cancel your changes before switching profile")
        screen.set_value("quick_window", "3")  # back as it was: nothing would be lost
        button = screen.query_one("#switch-profile", Button)
        await wait_until(pilot, lambda: not button.has_class("-active"))  # a button ignores clicks while it flashes
        await pilot.click("#switch-profile")
        await wait_until(pilot, lambda: isinstance(app.screen, ProfileScreen))
        options = app.screen.query_one(OptionList)
        assert options.highlighted == options.get_option_index("profile-interview")  # the active one
    assert factory.run is not None and factory.run.applied == []
    assert "quick_window" not in config.read_text()


# --- a real runner: what the next hint sends -----------------------------------------------------------------


async def _key() -> SecretStr:
    return SecretStr("ek_memory")


def request(create: dict[str, Any]) -> dict[str, Any]:
    """A response.create without what differs from one hint to the next by design (its id and number)."""
    out = copy.deepcopy(create)
    out.pop("event_id", None)
    out["response"]["metadata"].pop(HINT_KEY)
    return out


async def hint(pilot: Pilot[int], peer: MemoryPeer, runner: Runner, n: int) -> dict[str, Any]:
    """Press h; answer the n-th response.create as a WebRTC server would (created, its audio buffer started and
    stopped, done), so that the hint is over before the next one."""
    await pilot.press("h")
    async with asyncio.timeout(5):
        while len([e for e in peer.received if e["type"] == "response.create"]) < n:
            await pilot.pause(0.01)
    create = [e for e in peer.received if e["type"] == "response.create"][n - 1]
    metadata = create["response"]["metadata"]
    response = {"id": f"resp_{n}", "object": "realtime.response", "metadata": metadata, "output": []}
    peer.push({"type": "response.created", "event_id": f"c{n}", "response": {**response, "status": "in_progress"}})
    peer.push({"type": "output_audio_buffer.started", "event_id": f"s{n}", "response_id": f"resp_{n}"})
    peer.push({"type": "response.done", "event_id": f"d{n}", "response": {**response, "status": "completed"}})
    peer.push({"type": "output_audio_buffer.stopped", "event_id": f"e{n}", "response_id": f"resp_{n}"})
    await wait_until(pilot, lambda: not runner.coach.busy)
    return create


async def test_switching_mid_session_changes_the_next_hints_instructions_and_nothing_else(
    config: Path, tmp_path: Path
) -> None:
    settings = load_settings(config, {"base_url": "http://127.0.0.1:9/v1", "keep_sessions": False})
    peer = MemoryPeer()
    runners: list[Runner] = []

    def make_run(view: View) -> Runner:
        source = PcmSource(silence(WIRE_RATE), WIRE_RATE)
        runners.append(Runner(settings, view, source, NullSink(), factory=peer.factory, credential=_key))
        return runners[-1]

    app = CoachApp(settings, make_run, config, linger_s=0)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: bool(peer.links) and peer.current.uplink.gate_open)
        await wait_until(pilot, lambda: app.status.connection == "connected")
        [runner] = runners
        peer.push(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": "t1",
                "item_id": "u1",
                "content_index": 0,
                "transcript": "Tell me about your last project.",
            }
        )
        await wait_until(pilot, lambda: "Tell me about your last project." in "".join(app.transcript.lines()))
        first = await hint(pilot, peer, runner, 1)
        await pick(pilot, app, "terse")
        await wait_until(pilot, lambda: app.settings.profile == "terse")
        second = await hint(pilot, peer, runner, 2)
        sent = len(peer.received)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None, within=10)

    assert first["response"]["instructions"] != "Answer in one word."
    assert second["response"]["instructions"] == "Answer in one word."
    changed = request(first)
    changed["response"]["instructions"] = "Answer in one word."
    assert request(second) == changed  # the same window, budget and modalities: only the instructions moved
    # No session.update: the switch touched nothing of the session's own configuration.
    assert [e["type"] for e in peer.received[:sent]].count("session.update") == 1
