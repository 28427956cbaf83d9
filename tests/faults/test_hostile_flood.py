"""10,000 hostile messages from the server over the real data channel: no crash, the session goes on, and what
the client keeps and sends stays consistent. (tests/test_hostile_input.py is the pure parser/coach version.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import meeting
from faults_harness import LiveSession, figure, item_accounting, monotonic
from hostile import CONTROL_ERRORS, hostile_messages

from voicecoach.coach.actions import Intent, Notice
from voicecoach.coach.server_errors import BENIGN_ERRORS
from voicecoach.coach.state import State
from voicecoach.server import RealtimeServer

COUNT = 10_000
LINE = "Thanks."
HINT = "Ask what changed."
SENTINEL = {"type": "error", "error": {"type": "test", "code": "voicecoach_test_sentinel", "message": "flood over"}}


@pytest.mark.transports("auto")  # pure: no link at all
def test_the_flood_is_hostile_but_not_a_control_signal() -> None:
    messages = list(hostile_messages(COUNT))
    assert len(messages) == COUNT
    assert all(len(m) <= 262_144 for m in messages)
    assert sum(len(m) > 200_000 for m in messages) == 4
    decoded = []
    for m in messages:
        try:
            decoded.append(json.loads(m))
        except (ValueError, RecursionError):
            continue
    objects = [d for d in decoded if isinstance(d, dict)]
    assert len(decoded) < COUNT and len(objects) < len(decoded)  # some not JSON, some JSON but not objects
    codes = {d["error"].get("code") for d in objects if isinstance(d.get("error"), dict)}
    assert not codes & CONTROL_ERRORS
    assert any(isinstance(m, bytes) for m in messages)


async def test_ten_thousand_hostile_messages_over_the_wire(server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(utterances=[LINE], responses=[HINT])
    async with await LiveSession.start(server, tmp_path, meeting([(LINE, 0.5)])) as live:
        await live.ready()
        await live.until(lambda: len(live.lines("You")) == 1, 10, "the first line")
        call = server.calls[0]
        started = monotonic()
        sent = sum(server.faults.send_raw(call, m) for m in hostile_messages(COUNT))
        assert sent == COUNT
        assert server.faults.send_raw(call, json.dumps(SENTINEL))

        checked = 0

        def sentinel_seen() -> bool:
            nonlocal checked  # only look at what is new: the flood leaves thousands of notices
            actions, start = live.view.actions, checked
            checked = len(actions)
            return any(isinstance(a, Notice) and "voicecoach_test_sentinel" in a.text for _, a in actions[start:])

        await live.until(sentinel_seen, 60, "the client to get through the flood")
        through = monotonic()
        # Still working: a hint asked for now is answered, heard, and kept. (Invented transcripts in the flood may
        # have fired hints of their own, some tied to invented responses; a new request cuts those off.)
        coach_lines = len(live.lines("Coach"))
        live.runner.intents.put_nowait(Intent.QUICK_HINT)
        await live.until(
            lambda: len(live.lines("Coach")) > coach_lines and not live.runner.coach.busy, 15, "the hint after"
        )
        assert live.lines("Coach")[-1] == f"Coach: {HINT}"
        assert live.runner.coach.state is State.LISTENING
        report = await live.finish()

    # One link all along: nothing in the flood ended or renewed the session, and the call is still up.
    assert report.links == 1 and len(server.calls) == 1
    assert "! reconnecting" not in live.view.text.getvalue()
    # Every message reached the client and was logged (as data) before the sentinel.
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    received = [e for e in events if e["dir"] == "received"]
    assert len(received) >= COUNT + 1
    malformed = [
        e for e in received if isinstance(e["event"], dict) and e["event"].get("type") == "voicecoach.malformed"
    ]
    assert len(malformed) > COUNT // 20
    # Whatever it was fed, the client only sent well-formed events: the server found nothing to complain about
    # beyond the harmless races (cancelling a response that had just finished).
    complaints = {e["error"]["code"] for e in call.events_sent if e["type"] == "error"}
    assert complaints <= BENIGN_ERRORS, complaints
    # The session file: no key twice, and everything the real server finished is in it (the flood's invented
    # transcripts may be there too: they are what the server said).
    books = item_accounting(server, live.runner)
    assert books.lost == [] and books.duplicated == 0
    figure(
        "hostile flood",
        messages=COUNT,
        through_ms=(through - started) * 1000,
        invented_items_kept=len(books.phantoms),
        lost=len(books.lost),
        duplicated=books.duplicated,
    )
