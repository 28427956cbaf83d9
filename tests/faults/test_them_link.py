"""The other side of the call on its own link: both channels over the real local server (the main link over
WebRTC and over the WebSocket, the them link always a transcription-only WebSocket session).

Both channels are transcribed, labelled and read in the order spoken; only the user's phrases fire or stop a
hint; the them link lost alone comes back by itself while the main link goes on untouched, and nothing
already transcribed on either channel is lost or kept twice.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from faults_harness import Cli, elapsed_ms, figure, monotonic, session_items, until, write_wav
from test_process import client_args
from them_harness import Dialogue, dialogue, main_calls, spoken_order, start_two_sided, texts, them_calls

from voicecoach.coach.actions import Interrupted, TranscriptChanged
from voicecoach.coach.settings import CoachSettings
from voicecoach.server import RealtimeServer
from voicecoach.store import SessionStore
from voicecoach.transcript import items_of

ORDERED: Dialogue = [
    ("them", "Tell me about the launch.", 0.9),
    ("you", "We ship in May.", 0.9),
    ("them", "And the budget?", 0.9),
    ("you", "It is on track.", 0.9),
]


async def test_both_channels_are_transcribed_labelled_and_in_spoken_order(server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(
        utterances=texts(ORDERED, "you"), them_utterances=texts(ORDERED, "them")
    )
    live, _ = await start_two_sided(server, tmp_path, ORDERED, coach=CoachSettings(them_label="Interviewer"))
    async with live:
        await live.until(lambda: len(spoken_order(live.runner)) == 4, 20, "four utterances on two channels")
        report = await live.finish()

    expected = [f"{'You' if who == 'you' else 'Interviewer'}: {text}" for who, text, _ in ORDERED]
    assert spoken_order(live.runner) == expected
    assert sorted(report.transcript) == sorted(expected)  # the report lists them as they finished
    assert (report.links, report.them_links) == (1, 1)
    assert len(them_calls(server)) == 1 and len(main_calls(server)) == 1

    # The session file: every utterance once, with its speaker and label, and in spoken order by started_at.
    items = [i for i in session_items(live.runner) if i["kind"] == "utterance"]
    assert [(i.get("speaker", "you"), i["text"]) for i in sorted(items, key=lambda i: i["started_at"])] == [
        (who, text) for who, text, _ in ORDERED
    ]
    assert {i.get("label") for i in items if i.get("speaker") == "them"} == {"Interviewer"}

    # The events file tells the links apart: the them link's lines carry "channel": "them".
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    them_sent = [e["event"] for e in events if e.get("channel") == "them" and e["dir"] == "sent"]
    assert [e["type"] for e in them_sent] == ["session.update"]
    assert them_sent[0]["session"]["type"] == "transcription"
    them_done = [
        e["event"]["transcript"]
        for e in events
        if e.get("channel") == "them" and e["event"].get("type", "").endswith("transcription.completed")
    ]
    assert them_done == texts(ORDERED, "them")
    main_done = [
        e["event"]["transcript"]
        for e in events
        if "channel" not in e and e["event"].get("type", "").endswith("transcription.completed")
    ]
    assert main_done == texts(ORDERED, "you")
    # Audio of the other side went to its own session only, and the main session never heard a them line.
    assert them_calls(server)[0].received_audio.size > 0
    assert not any(e.get("type") == "response.create" for c in them_calls(server) for e in c.events_received)


PHRASES: Dialogue = [
    ("them", "That is a good question.", 3.0),  # the other side's trigger phrase: nothing fires
    ("you", "Good question.", 1.5),  # the user's: the hint starts
    ("them", "Got it.", 3.0),  # the other side's interrupt phrase, while the hint plays: it goes on
    ("you", "Got it.", 2.0),  # the user's: it stops
]
LONG_HINT = (
    "Start with the pilot in two regions for four weeks, then widen it in stages. Tie each stage to a clear "
    "metric such as crash rate and retention, and name who decides to go on. Close with the fallback plan, "
    "and say who owns it and when it is reviewed."
)


async def test_only_the_users_phrases_fire_or_stop_a_hint(server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(
        utterances=texts(PHRASES, "you"), them_utterances=texts(PHRASES, "them"), responses=[LONG_HINT]
    )
    coach = CoachSettings(cooldown_seconds=0.5, quick_seconds=30)
    live, _ = await start_two_sided(server, tmp_path, PHRASES, coach=coach)
    async with live:
        await live.until(lambda: len(spoken_order(live.runner)) == 4, 30, "all four utterances")
        await live.until(lambda: not live.runner.coach.busy, 10, "the hint to end")
        report = await live.finish()

    creates = [e for c in main_calls(server) for e in c.events_received if e["type"] == "response.create"]
    assert len(creates) == 1, "only the user's 'good question' asks for a hint"
    window = creates[0]["response"]["input"][0]["content"][0]["text"]
    assert "Them: That is a good question." in window  # the other side's line is in the hint's window
    finals = {
        (a.message.role, a.message.text): t
        for t, a in live.view.actions
        if isinstance(a, TranscriptChanged) and a.final and a.message.role != "coach"
    }
    interrupts = live.view.times(lambda a: isinstance(a, Interrupted))
    assert len(interrupts) == 1, "the other side's 'got it' stops nothing; the user's does"
    # The hint was still playing when the other side's "Got it." was transcribed, and was stopped only after.
    assert interrupts[0] > finals[("them", "Got it.")]
    items = session_items(live.runner)
    hints = [i for i in items_of(items) if i["kind"] == "hint"]  # the cut folded into the hint it amends
    assert [h["generated_text"] for h in hints] == [LONG_HINT]  # the whole hint is kept; the text is what played
    played = hints[0]["text"]
    assert played and LONG_HINT.startswith(played) and played != LONG_HINT
    assert [i["why"] for i in items if i["kind"] == "interrupt"] == ["said 'got it'"]
    assert f"Coach: {played} [interrupted]" in report.transcript


DROPPED: Dialogue = [
    ("them", "First, the roadmap.", 0.8),
    ("you", "It has three stages.", 3.0),  # the them link is dropped in this pause
    ("them", "Then, the team.", 0.8),
    ("you", "Five people.", 0.8),
]


async def test_losing_the_them_link_alone_reconnects_it_and_loses_nothing(server_factory: Any, tmp_path: Path) -> None:
    server: RealtimeServer = await server_factory(
        utterances=texts(DROPPED, "you"), them_utterances=texts(DROPPED, "them")
    )
    live, _ = await start_two_sided(server, tmp_path, DROPPED)
    async with live:
        await live.until(lambda: len(spoken_order(live.runner)) == 2, 15, "the first two utterances")
        them = live.runner.them
        assert them is not None and them.links == 1
        [first] = them_calls(server)
        main = main_calls(server)[0]
        dropped_at = monotonic()
        assert server.faults.drop(first)
        await live.until(lambda: them.links == 2 and them.up, 15, "the them link to come back")
        back_at = monotonic()
        await live.until(lambda: len(spoken_order(live.runner)) == 4, 20, "the last two utterances")
        assert not main.closed, "the main link's call went on through the them link's loss"
        report = await live.finish()

    # The main link was never touched: one connection, its call open until the end, no reconnect line.
    assert report.links == 1 and not live.view.reconnecting_at()
    assert len(main_calls(server)) == 1
    assert report.them_links == 2 and len(them_calls(server)) == 2
    assert spoken_order(live.runner) == [f"{'You' if w == 'you' else 'Them'}: {t}" for w, t, _ in DROPPED]
    # Every finished item is in the session file exactly once.
    items = [i for i in session_items(live.runner) if i["kind"] == "utterance"]
    assert Counter(i["text"] for i in items) == Counter(text for _, text, _ in DROPPED)
    assert all(n == 1 for n in Counter(i["key"] for i in items).values())
    assert "the other side's transcription: connection lost" in live.view.text.getvalue()
    figure("them link dropped alone", reconnect_ms=elapsed_ms(dropped_at, back_at), main_links=report.links)


@pytest.mark.transports("webrtc")  # the main link must not use the WebSocket endpoint the fault is put on
async def test_a_them_link_that_cannot_connect_is_retried_and_never_ends_the_run(
    server_factory: Any, tmp_path: Path
) -> None:
    lines: Dialogue = [("you", "Point one.", 0.8), ("them", "Noted.", 0.8), ("you", "Point two.", 0.8)]
    server: RealtimeServer = await server_factory(utterances=texts(lines, "you"), them_utterances=["Noted."])
    server.faults.fail("realtime", status=503, times=2)  # only the them link asks for /realtime here
    live, _ = await start_two_sided(server, tmp_path, lines)
    async with live:
        await live.until(lambda: live.runner.them is not None and live.runner.them.up, 15, "the them link")
        await live.until(lambda: len(spoken_order(live.runner)) == 3, 20, "both channels' lines")
        report = await live.finish()
    assert live.runner.them is not None and live.runner.them.failures == 2
    warnings = [line for line in live.view.text.getvalue().splitlines() if "transcription is not connected" in line]
    assert len(warnings) == 1 and "retrying in" in warnings[0]  # the same failure twice: said once
    assert report.links == 1 and report.them_links == 1
    assert spoken_order(live.runner) == ["You: Point one.", "Them: Noted.", "You: Point two."]


async def test_kill_9_keeps_both_channels_finished_items(server_factory: Any, tmp_path: Path) -> None:
    lines: Dialogue = [
        ("them", "Question one.", 0.6),
        ("you", "Answer one.", 0.6),
        ("them", "Question two.", 0.6),
        ("you", "Answer two.", 0.6),
        ("them", "Question three.", 0.6),
        ("you", "Answer three.", 5.0),
    ]
    server: RealtimeServer = await server_factory(utterances=texts(lines, "you"), them_utterances=texts(lines, "them"))
    mic, them = dialogue(lines)
    args = client_args(server.base_url, tmp_path, "run", write_wav(tmp_path / "mic.wav", mic), "--duration", "60")
    cli = await Cli.start(*args, "--them-file", str(write_wav(tmp_path / "them.wav", them)))
    try:
        await until(lambda: cli.count("You: ") >= 2 and cli.count("Them: ") >= 2, 30, "two lines of each side")
        code = await cli.kill()
    finally:
        await cli.close()
    assert code == -signal.SIGKILL

    printed = Counter(
        (who, line.split(": ", 1)[1]) for line in cli.out for who in ("you", "them") if line.startswith(LABELS[who])
    )
    [path] = (tmp_path / "data" / "sessions").glob("*.jsonl")
    records = SessionStore(path.parent).load(path.stem)[1:]
    kept = Counter((r.get("speaker", "you"), r["text"]) for r in records if r["kind"] == "utterance")
    assert printed[("them", "Question two.")] == 1 and printed[("you", "Answer two.")] == 1
    lost = printed - kept
    assert not lost, f"printed but not in the session file: {lost}"
    assert all(n == 1 for n in Counter(r["key"] for r in records).values())
    figure("kill -9, two channels", printed=sum(printed.values()), kept=sum(kept.values()), lost=sum(lost.values()))


LABELS = {"you": "You: ", "them": "Them: "}


ROLLING: Dialogue = [
    ("them", "One.", 1.2),
    ("you", "Two.", 1.2),
    ("them", "Three.", 1.2),
    ("you", "Four.", 1.2),
    ("them", "Five.", 1.2),
    ("you", "Six.", 1.2),
    ("them", "Seven.", 1.2),
]


async def test_the_them_link_rolls_over_before_the_servers_cap_and_loses_nothing(
    server_factory: Any, tmp_path: Path
) -> None:
    """Both sessions are capped at 5 s here (the real cap is 60 min): each is renewed ``rollover_margin`` before,
    at a moment with no open turn, quietly, and every line of both channels is still transcribed once."""
    server: RealtimeServer = await server_factory(
        utterances=texts(ROLLING, "you"), them_utterances=texts(ROLLING, "them"), session_max_seconds=5.0
    )
    live, _ = await start_two_sided(server, tmp_path, ROLLING, session_max_seconds=5.0, rollover_margin_seconds=1.5)
    async with live:
        await live.until(lambda: len(spoken_order(live.runner)) == len(ROLLING), 40, "every line of both sides")
        report = await live.finish()
    assert report.them_links >= 2, "the them link was renewed"
    assert all(c.close_reason != "session_expired" for c in them_calls(server))  # renewed before the cap
    assert "the other side's transcription:" not in live.view.text.getvalue()  # a rollover is no warning
    assert spoken_order(live.runner) == [f"{'You' if w == 'you' else 'Them'}: {t}" for w, t, _ in ROLLING]
    items = [i for i in session_items(live.runner) if i["kind"] == "utterance"]
    assert sorted(i["text"] for i in items) == sorted(t for _, t, _ in ROLLING)
    figure("them link rollover (5 s cap)", them_links=report.them_links, main_links=report.links)
