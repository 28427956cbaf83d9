"""A link lost in the middle of a hint: the client says so, reconnects, carries the context, and goes on.

The meeting: one line, then a hint by key; while the hint is playing the server breaks the link (closes the peer
connection, or closes only the data channel); the next line ("good question") is spoken on the new link and fires
the next hint by phrase. Nothing finished may be lost or kept twice. Then: a network that dies silently, and a
reconnect that fails once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aioice.ice
import aioice.stun
import pytest
from e2e_harness import meeting
from faults_harness import LiveSession, elapsed_ms, figure, item_accounting, monotonic

from voicecoach.coach.actions import Intent
from voicecoach.coach.state import State
from voicecoach.server import RealtimeServer

LINES = ["Thanks, everyone.", "Good question."]
HINTS = ["Open with the revenue numbers, then name the one risk that matters.", "On track."]


# On a WebSocket both faults drop the socket (the server's kill_peer "close" and drop_channel do the same there).
@pytest.mark.parametrize("how", ["kill_peer", "drop_channel"])
async def test_link_lost_mid_hint_reconnects_and_loses_nothing(how: str, server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(utterances=LINES, responses=HINTS)
    audio = meeting([(LINES[0], 2.0), (LINES[1], 0.5)])
    async with await LiveSession.start(server, tmp_path, audio) as live:
        await live.ready()
        await live.until(lambda: len(live.lines("You")) == 1, 10, "the first line")
        live.runner.intents.put_nowait(Intent.QUICK_HINT)
        # In the middle of the hint: its audio is playing (its transcript is already complete, as the API's
        # generation runs ahead of playback).
        await live.until(
            lambda: live.runner.coach.state is State.SPEAKING and len(live.lines("Coach")) == 1, 10, "hint 1 playing"
        )
        assert live.runner.coach.busy
        broken_at = monotonic()
        if how == "drop_channel":
            assert server.faults.drop_channel(server.calls[0])
        else:
            await server.faults.kill_peer(server.calls[0], "close")

        await live.until(lambda: bool(live.view.reconnecting_at()), 10, "the client to notice the loss")
        await live.ready(links=2)
        # The next line is heard on the new link and its trigger phrase fires the next hint.
        await live.until(lambda: len(live.lines("Coach")) == 2 and not live.runner.coach.busy, 15, "hint 2")
        report = await live.finish()

    assert report.links == 2 and len(server.calls) == 2
    assert "! reconnecting: connection lost" in live.view.text.getvalue()
    assert report.transcript == [f"You: {LINES[0]}", f"Coach: {HINTS[0]}", f"You: {LINES[1]}", f"Coach: {HINTS[1]}"]
    # The new session was set up like the first, then given the conversation so far.
    new = server.calls[1].events_received
    assert new[0]["type"] == "session.update"
    [history] = [e for e in new if e["type"] == "conversation.item.create"]
    text = history["item"]["content"][0]["text"]
    assert LINES[0] in text and HINTS[0] in text
    create = next(e for e in new if e["type"] == "response.create")
    assert new.index(history) < new.index(create)
    # The second hint came from the trigger phrase spoken on the new link, with the carried-over line in its window.
    assert LINES[0] in create["response"]["input"][0]["content"][0]["text"]

    books = item_accounting(server, live.runner)
    assert len(books.expected) == 4
    assert (books.lost, books.duplicated, books.phantoms) == ([], 0, [])
    lost_at, ready_at = live.view.reconnecting_at()[0], live.view.ready_at()[1]
    figure(
        f"link lost mid-hint ({how})",
        noticed_ms=elapsed_ms(broken_at, lost_at),
        reconnect_ms=elapsed_ms(lost_at, ready_at),
        lost=len(books.lost),
        duplicated=books.duplicated,
    )


@pytest.mark.transports("webrtc")  # ICE consent is WebRTC's; a frozen WebSocket peer is in test_dead_link.py
async def test_dead_network_is_noticed_and_the_session_goes_on(
    server_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The network goes silent (no close, no error): only ICE consent checks can tell. They take ~30 s with
    aioice's timers (6 misses, 5 s apart, 0.5 s timeout each); here the same mechanism is compressed ~20x."""
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.1)
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 0.1)
    server: RealtimeServer = await server_factory(responses=HINTS[1:])
    async with await LiveSession.start(server, tmp_path, meeting([])) as live:
        await live.ready()
        broken_at = monotonic()
        await server.faults.kill_peer(server.calls[0], "blackhole")
        await live.until(lambda: bool(live.view.reconnecting_at()), 10, "the client to notice the dead network")
        await live.ready(links=2)
        live.runner.intents.put_nowait(Intent.QUICK_HINT)
        await live.until(lambda: len(live.lines("Coach")) == 1 and not live.runner.coach.busy, 10, "a hint")
        report = await live.finish()
    assert report.links == 2 and server.calls[0].closed
    books = item_accounting(server, live.runner)
    assert (books.lost, books.duplicated, books.phantoms) == ([], 0, [])
    lost_at, ready_at = live.view.reconnecting_at()[0], live.view.ready_at()[1]
    figure(
        "dead network (blackhole, consent timers /20)",
        noticed_ms=elapsed_ms(broken_at, lost_at),
        reconnect_ms=elapsed_ms(lost_at, ready_at),
        lost=len(books.lost),
        duplicated=books.duplicated,
    )


@pytest.mark.transports("webrtc")  # the WebSocket takes the standard key: no client secret to fail
async def test_reconnect_that_fails_once_is_retried(server_factory: Any, tmp_path: Path) -> None:
    """A transient failure on reconnect (503 once) is retried after the back-off, and the session goes on."""
    server: RealtimeServer = await server_factory()
    async with await LiveSession.start(server, tmp_path, meeting([])) as live:
        await live.ready()
        server.faults.fail("client_secrets", status=503, from_request=2, times=1)
        assert server.faults.drop_channel(server.calls[0])
        await live.ready(links=2)
        report = await live.finish()
    assert server.faults.requests["client_secrets"] == 3
    assert report.links == 2
    assert "reconnect failed (the Realtime API failed the client secret request (HTTP 503)" in live.view.text.getvalue()
