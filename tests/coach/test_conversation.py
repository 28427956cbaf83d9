"""The transcript model: ordering by item ids, deltas vs final text, coach hints, windows and the memory bound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecoach.coach.conversation import Conversation, Message


def said(conv: Conversation, item_id: str, text: str, now: float = 0.0, previous: str | None = None) -> Message:
    conv.user_item(item_id, previous, now)
    return conv.user_completed(item_id, text, now)


def ids(messages: list[Message]) -> list[str]:
    return [m.item_id for m in messages]


# --- user turns ---------------------------------------------------------------------------------------


def test_items_go_after_their_previous_item_or_last() -> None:
    conv = Conversation()
    conv.user_item("a", None, 1.0)
    conv.user_item("c", "a", 2.0)
    conv.user_item("b", "a", 3.0)  # the server says b follows a
    conv.user_item("d", "unknown", 4.0)  # unknown previous: append
    assert ids(conv.messages()) == ["a", "b", "c", "d"]
    assert len(conv) == 4


def test_user_item_is_idempotent() -> None:
    conv = Conversation()
    conv.user_item("a", None, 1.0)
    conv.user_delta("a", "hello", 1.5)
    conv.user_item("a", None, 2.0)
    [message] = conv.messages()
    assert (message.text, message.started_at) == ("hello", 1.0)


def test_a_user_item_keeps_local_hints_before_it() -> None:
    conv = Conversation()
    said(conv, "u1", "good question")
    conv.coach_started("r1", "quick", 1.0)
    conv.user_item("u2", "u1", 2.0)  # the server does not know about out-of-band hints
    assert ids(conv.messages()) == ["u1", "r1", "u2"]


def test_deltas_build_text_and_may_come_before_the_item() -> None:
    conv = Conversation()
    first = conv.user_delta("a", "Good ", 1.0)
    conv.user_item("a", None, 1.2)  # the late item.added must not duplicate or reset it
    second = conv.user_delta("a", "question", 1.5)
    assert first is second
    assert (second.text, second.done, second.started_at, second.ended_at) == ("Good question", False, 1.0, None)
    assert len(conv) == 1


def test_completion_replaces_the_deltas_and_later_deltas_are_ignored() -> None:
    conv = Conversation()
    conv.user_delta("a", "good quest", 1.0)
    done = conv.user_completed("a", "Good question.", 2.0)
    conv.user_delta("a", " extra", 3.0)
    assert (done.text, done.done, done.ended_at) == ("Good question.", True, 2.0)


def test_completion_without_any_earlier_event_creates_the_message() -> None:
    conv = Conversation()
    message = conv.user_completed("a", "hello", 5.0)
    assert message == Message("a", "user", "hello", done=True, started_at=5.0, ended_at=5.0)


def test_failed_transcription_is_done_empty_and_skipped_by_windows() -> None:
    conv = Conversation()
    said(conv, "a", "hello")
    conv.user_delta("b", "garbled", 1.0)
    conv.user_failed("b", 2.0)
    conv.user_failed("c", 3.0)
    [_, b, c] = conv.messages()
    assert (b.text, b.done, b.ended_at) == ("", True, 2.0)
    assert (c.text, c.done) == ("", True)
    assert ids(conv.window(5)) == ["a"]


def test_remove_deletes_a_user_item_only() -> None:
    conv = Conversation()
    said(conv, "a", "one")
    said(conv, "b", "two")
    conv.coach_started("b_resp", "quick", 1.0)
    conv.remove("a")
    conv.remove("nope")
    conv.remove("b_resp")  # a response id is not an item id
    assert ids(conv.messages()) == ["b", "b_resp"]
    said(conv, "c", "three", previous="a")  # previous was deleted: append
    assert ids(conv.messages()) == ["b", "b_resp", "c"]


def test_user_and_coach_ids_do_not_collide() -> None:
    conv = Conversation()
    said(conv, "x", "user words")
    conv.coach_delta("x", "coach words", 1.0)
    assert [(m.role, m.text) for m in conv.messages()] == [("user", "user words"), ("coach", "coach words")]


# --- coach hints --------------------------------------------------------------------------------------


def test_coach_hint_lifecycle() -> None:
    conv = Conversation()
    said(conv, "u1", "good question")
    started = conv.coach_started("r1", "quick", 1.0)
    assert conv.coach_started("r1", None, 1.1) is started  # idempotent; a missing tier does not erase one
    conv.coach_delta("r1", "Say ", 1.2)
    conv.coach_delta("r1", "yes.", 1.3)
    assert (started.role, started.text, started.tier, started.done) == ("coach", "Say yes.", "quick", False)
    done = conv.coach_done("r1", "Say yes, firmly.", 2.0)
    conv.coach_delta("r1", " late", 2.5)
    assert done is started
    assert (done.text, done.done, done.ended_at, done.interrupted) == ("Say yes, firmly.", True, 2.0, False)


def test_coach_done_without_transcript_keeps_the_streamed_text() -> None:
    conv = Conversation()
    conv.coach_started("r1", "full", 1.0)
    conv.coach_delta("r1", "First, ", 1.1)
    done = conv.coach_done("r1", None, 1.5, interrupted=True)
    assert (done.text, done.interrupted, done.ended_at) == ("First, ", True, 1.5)


def test_interrupting_a_finished_hint_marks_it_and_stays_interrupted() -> None:
    conv = Conversation()
    conv.coach_started("r1", "quick", 1.0)
    conv.coach_done("r1", "Whole hint.", 2.0)  # generated; still playing
    conv.coach_done("r1", None, 3.0, interrupted=True)  # the user cut the playback
    message = conv.coach_done("r1", None, 4.0)  # a repeat without the flag does not clear it
    assert (message.text, message.interrupted, message.ended_at) == ("Whole hint.", True, 3.0)


def test_coach_events_for_an_unknown_response_create_it() -> None:
    conv = Conversation()
    assert conv.coach_delta("r9", "hi", 1.0).tier is None
    assert conv.coach_done("r8", "bye", 2.0).done
    assert ids(conv.messages()) == ["r9", "r8"]


# --- windows and rendering ----------------------------------------------------------------------------


def test_window_is_the_last_n_non_blank_messages_in_order() -> None:
    conv = Conversation()
    for i in range(1, 6):
        said(conv, f"u{i}", f"message {i}")
    conv.coach_started("r1", "quick", 9.0)  # no text yet: skipped
    conv.user_delta("u6", "  ", 9.5)  # blank so far: skipped
    conv.user_delta("u7", "good question", 9.6)  # in progress, but has text: included
    assert ids(conv.window(3)) == ["u4", "u5", "u7"]
    assert ids(conv.window(100)) == ["u1", "u2", "u3", "u4", "u5", "u7"]
    assert conv.window(0) == [] and conv.window(-2) == []


def test_window_includes_coach_hints() -> None:
    conv = Conversation()
    said(conv, "u1", "good question")
    conv.coach_done("r1", "Ask about the budget.", 1.0)
    said(conv, "u2", "thanks")
    assert [m.role for m in conv.window(3)] == ["user", "coach", "user"]


# --- memory bound -------------------------------------------------------------------------------------


def test_oldest_messages_are_evicted_beyond_the_bound() -> None:
    conv = Conversation(max_messages=3)
    for i in range(10):
        said(conv, f"u{i}", f"text {i}", float(i))
    assert len(conv) == 3
    assert ids(conv.messages()) == ["u7", "u8", "u9"]
    assert ids(conv.window(10)) == ["u7", "u8", "u9"]
    said(conv, "u10", "late", previous="u8")  # inserted in the middle: the head still goes
    assert ids(conv.messages()) == ["u8", "u10", "u9"]


def test_a_two_hour_meeting_stays_bounded() -> None:
    conv = Conversation(max_messages=2000)
    previous = None
    for i in range(20_000):
        said(conv, f"u{i}", f"sentence {i}", float(i), previous=previous)
        previous = f"u{i}"
        if i % 10 == 0:
            conv.coach_done(f"r{i}", "hint", float(i))
    assert len(conv) == 2000
    assert conv.window(3)[-1].item_id == "u19999"


def test_max_messages_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_messages"):
        Conversation(max_messages=0)


# --- model check against a plain list -----------------------------------------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["item", "delta", "done", "fail", "remove", "coach"]),
        st.integers(min_value=0, max_value=7),
        st.integers(min_value=-1, max_value=7),
    ),
    max_size=60,
)


@given(OPS, st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=8))
def test_linked_list_matches_a_plain_list_model(ops: list[tuple[str, int, int]], bound: int, n: int) -> None:
    conv = Conversation(max_messages=bound)
    model: list[tuple[str, str]] = []  # (role, id) in order; texts live in the messages themselves

    def append(key: tuple[str, str]) -> None:
        if key not in model:
            model.append(key)

    for op, a, b in ops:
        uid, rid = f"u{a}", f"r{a}"
        if op == "item":
            key = ("user", uid)
            if key not in model:
                anchor = ("user", f"u{b}")
                if b >= 0 and anchor in model:
                    at = model.index(anchor) + 1
                    while at < len(model) and model[at][0] == "coach":
                        at += 1
                    model.insert(at, key)
                else:
                    model.append(key)
            conv.user_item(uid, f"u{b}" if b >= 0 else None, 0.0)
        elif op == "delta":
            append(("user", uid))
            conv.user_delta(uid, f"w{b} ", 0.0)
        elif op == "done":
            append(("user", uid))
            conv.user_completed(uid, f"final {b}", 0.0)
        elif op == "fail":
            append(("user", uid))
            conv.user_failed(uid, 0.0)
        elif op == "remove":
            if ("user", uid) in model:
                model.remove(("user", uid))
            conv.remove(uid)
        else:
            append(("coach", rid))
            conv.coach_delta(rid, "hint ", 0.0)
        del model[: max(0, len(model) - bound)]
        assert [(m.role, m.item_id) for m in conv.messages()] == model
        assert len(conv) == len(model)
    expected = [m for m in conv.messages() if m.text.strip()][-n:] if n else []
    assert [id(m) for m in conv.window(n)] == [id(m) for m in expected]
