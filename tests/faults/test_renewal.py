"""Sessions that end on the server's clock: ``session_expired``, and the client's rollover before the limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_harness import meeting
from faults_harness import LiveSession, elapsed_ms, figure, item_accounting, monotonic, session_items

from voicecoach.coach.actions import Intent, Interrupted, StatusChanged, TranscriptChanged
from voicecoach.coach.state import State
from voicecoach.server import RealtimeServer

LINE = "Thanks."
SHORT_HINT = "Lead with the numbers, then name one risk."  # ~3.3 s of speech
LONG_HINT = (
    "Lead with the numbers first, then name the single biggest risk, who owns it, and what you will do about it "
    "before the next review."
)  # ~9 s of speech


def history_text(events: list[Any]) -> str:
    [item] = [e for e in events if isinstance(e, dict) and e.get("type") == "conversation.item.create"]
    assert item["item"]["role"] == "system"
    return str(item["item"]["content"][0]["text"])


async def test_session_expired_renews_and_carries_context(server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=["On track."])
    async with await LiveSession.start(server, tmp_path, meeting([(LINE, 0.5)])) as live:
        await live.ready()
        await live.until(lambda: len(live.lines("You")) == 1, 10, "the first line")
        expired_at = monotonic()
        server.faults.expire_session(server.calls[0])
        await live.ready(links=2)
        live.runner.intents.put_nowait(Intent.QUICK_HINT)
        await live.until(lambda: len(live.lines("Coach")) == 1 and not live.runner.coach.busy, 10, "a hint")
        report = await live.finish()

    old, new = server.calls
    assert [e["error"]["code"] for e in old.events_sent if e["type"] == "error"] == ["session_expired"]
    assert old.closed and old.close_reason == "session_expired"
    # The client renewed the session (it did not end, and it did not treat it as a network failure).
    text = live.view.text.getvalue()
    assert "server: Your session hit the maximum duration" in text
    assert "! reconnecting: session_expired" in text
    assert report.links == 2 and report.reason == "test condition met"
    # The context reached the new session, and the hint asked there had the earlier line in its window.
    assert new.events_received[0]["type"] == "session.update"
    assert LINE in history_text(new.events_received)
    [create] = [e for e in new.events_received if e["type"] == "response.create"]
    assert LINE in create["response"]["input"][0]["content"][0]["text"]
    books = item_accounting(server, live.runner)
    assert len(books.expected) == 2 and (books.lost, books.duplicated, books.phantoms) == ([], 0, [])
    figure(
        "session_expired",
        renew_ms=elapsed_ms(expired_at, live.view.ready_at()[1]),
        lost=len(books.lost),
        duplicated=books.duplicated,
    )


# session_max 10 s, margin 7 s: the rollover is due 3 s after the link opens, and forced at 6.5 s.
MAX_S, MARGIN_S = 10.0, 7.0
DUE_S, HARD_S = MAX_S - MARGIN_S, MAX_S - MARGIN_S / 2


@pytest.mark.parametrize("ending", ["finished", "interrupted"])
async def test_rollover_waits_for_the_hint_and_carries_context(
    ending: str, server_factory: Any, tmp_path: Path, transport: str
) -> None:
    hint = SHORT_HINT if ending == "finished" else LONG_HINT
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=[hint], session_max_seconds=MAX_S)
    audio = meeting([(LINE, 0.5)])
    async with await LiveSession.start(
        server, tmp_path, audio, session_max_seconds=MAX_S, rollover_margin_seconds=MARGIN_S
    ) as live:
        await live.ready()
        opened = live.view.ready_at()[0]  # a few ms after the rollover clock started
        await live.until(lambda: len(live.lines("You")) == 1, 10, "the first line")
        assert live.now < opened + DUE_S - 0.2, "the line came too late to start the hint before the rollover"
        # A hint started right before the rollover is due, still playing when it is.
        live.runner.intents.put_nowait(Intent.QUICK_HINT)
        await live.until(lambda: live.runner.coach.state is State.SPEAKING, 5, "the hint to play")
        await live.until(lambda: live.now > opened + DUE_S + 0.3, 5, "the rollover to be due")
        assert live.runner.coach.busy and len(server.calls) == 1, "the rollover did not wait for the hint"
        interrupted_at = None
        if ending == "interrupted":
            interrupted_at = live.now
            live.runner.intents.put_nowait(Intent.INTERRUPT)
        await live.ready(links=2, seconds=HARD_S + 2)
        report = await live.finish()

    renew_at = live.view.reconnecting_at()[0]
    assert "! reconnecting: rolling over to a fresh session" in live.view.text.getvalue()
    assert report.links == 2
    # Before the limit: the server never had to expire the first session, and the rollover was not forced.
    old, new = server.calls
    assert not [e for e in old.events_sent if e["type"] == "error"]
    assert renew_at < opened + HARD_S
    # Never in the middle of the hint: it ended (played out, or cut by the user) before the link was renewed.
    speaking_ended = live.view.times(lambda a: isinstance(a, StatusChanged) and a.previous is State.SPEAKING)
    assert speaking_ended and speaking_ended[0] <= renew_at
    [record] = [i for i in session_items(live.runner) if i["kind"] == "hint"]
    old_types = [e["type"] for e in old.events_sent]
    if transport == "websocket":  # no server-side playback buffer: the player's own state decided
        assert not [t for t in old_types if t.startswith("output_audio_buffer.")]
    if ending == "finished":
        if transport == "webrtc":
            assert "output_audio_buffer.stopped" in old_types and "output_audio_buffer.cleared" not in old_types
        assert record["text"] == hint and not record["interrupted"]
    else:
        assert interrupted_at is not None and interrupted_at <= renew_at
        if transport == "webrtc":
            assert "output_audio_buffer.cleared" in old_types
        assert record["interrupted"]
        assert any(isinstance(a, Interrupted) and a.why == "key" for _, a in live.view.actions)
    # The context carried over: the line and the hint are in the new session's history item.
    history = history_text(new.events_received)
    assert LINE in history and record["text"] in history
    books = item_accounting(server, live.runner)
    assert books.lost == [] and books.duplicated == 0 and books.phantoms == []
    figure(
        f"rollover ({ending} hint)",
        due_to_renew_ms=elapsed_ms(opened + DUE_S, renew_at),
        renew_ms=elapsed_ms(renew_at, live.view.ready_at()[1]),
        lost=len(books.lost),
        duplicated=books.duplicated,
    )


async def test_rollover_margin_larger_than_the_session_does_not_storm(server_factory: Any, tmp_path: Path) -> None:
    """A margin nearly as long as the session must not make every link roll over the moment it opens (it did:
    24 links in 1.5 s). A link lives at least ROLLOVER_MIN_SHARE of the limit: here 1 s of 5 s, not 0.1 s."""
    server: RealtimeServer = await server_factory()
    async with await LiveSession.start(
        server, tmp_path, meeting([]), session_max_seconds=5.0, rollover_margin_seconds=4.9
    ) as live:
        await live.ready()
        await live.until(lambda: live.now > live.view.ready_at()[0] + 1.5, 5, "1.5 s of session")
        report = await live.finish()
    assert report.links == 2


async def test_rollover_does_not_cut_an_utterance_in_half(server_factory: Any, tmp_path: Path) -> None:
    """Due while the user is talking: the rollover waits until the turn is transcribed, so no turn is split
    between two sessions (the first would never transcribe its half; the second would get only the tail)."""
    line = "So the plan is to hire two engineers."  # ~3.3 s, from 1 s after the link opens: due at 3 s
    server: RealtimeServer = await server_factory(utterances=[line], session_max_seconds=MAX_S)
    audio = meeting([(line, 0.5)], lead_in=1.0)
    async with await LiveSession.start(
        server, tmp_path, audio, session_max_seconds=MAX_S, rollover_margin_seconds=MARGIN_S
    ) as live:
        await live.ready()
        await live.until(lambda: len(live.lines("You")) == 1, 10, "the line")
        await live.ready(links=2, seconds=HARD_S)
        report = await live.finish()

    old = server.calls[0]
    types = [e["type"] for e in old.events_sent]
    assert types.count("input_audio_buffer.speech_started") == 1
    assert types.count("conversation.item.input_audio_transcription.completed") == 1, "the turn was cut"
    assert report.transcript == [f"You: {line}"]
    assert not [e for e in old.events_sent if e["type"] == "error"]
    # The rollover came once the transcript was in, and before it would have been forced.
    [heard_at] = live.view.times(lambda a: isinstance(a, TranscriptChanged) and a.final)
    opened, renew_at = live.view.ready_at()[0], live.view.reconnecting_at()[0]
    assert opened + DUE_S < heard_at <= renew_at < opened + HARD_S
