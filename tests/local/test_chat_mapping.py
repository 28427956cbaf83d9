"""A Realtime response's instructions and input items as chat messages (pure), faithfully and in order."""

from __future__ import annotations

from typing import Any

import pytest

from voicecoach.local.llm import chat_messages, max_tokens_from
from voicecoach.protocol import client_events as ce


def test_instructions_become_the_system_message_and_text_items_keep_their_roles() -> None:
    items = [
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "History: ..."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is two plus two?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Four."}]},
    ]
    assert chat_messages("You are a coach.", items) == [
        {"role": "system", "content": "You are a coach."},
        {"role": "system", "content": "History: ..."},
        {"role": "user", "content": "What is two plus two?"},
        {"role": "assistant", "content": "Four."},
    ]


def test_what_the_coach_sends_maps_one_to_one() -> None:
    """The items coach/hints.py builds (user_text / assistant_text) survive the wire and the mapping."""
    window = "Transcript of the conversation so far:\nYou: hi"
    items = [ce.user_text(window).to_wire(), ce.assistant_text("Hello.").to_wire()]
    assert chat_messages("Hint.", items)[1:] == [
        {"role": "user", "content": "Transcript of the conversation so far:\nYou: hi"},
        {"role": "assistant", "content": "Hello."},
    ]


def test_audio_parts_give_their_transcript_and_parts_join_by_lines() -> None:
    items = [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_audio", "transcript": "good question"},
                {"type": "input_text", "text": "(typed)"},
            ],
        },
        {"type": "message", "role": "assistant", "content": [{"type": "output_audio", "transcript": "Ask about X."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "audio", "transcript": "Beta name."}]},
    ]
    assert chat_messages(None, items) == [
        {"role": "user", "content": "good question\n(typed)"},
        {"role": "assistant", "content": "Ask about X."},
        {"role": "assistant", "content": "Beta name."},
    ]


def test_a_message_with_nothing_to_say_is_left_out() -> None:
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]},
        {"type": "message", "role": "user", "content": []},
        {"type": "mcp_list_tools", "server_label": "x"},
    ]
    assert chat_messages("  ", items) == []


def test_references_are_resolved_through_the_conversation() -> None:
    heard = {"type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": "hi"}]}
    conversation = {"item_1": heard}
    items = [{"type": "item_reference", "id": "item_1"}]
    assert chat_messages(None, items, conversation.get) == [{"role": "user", "content": "hi"}]
    with pytest.raises(ValueError, match="item_reference 'item_9'"):
        chat_messages(None, [{"type": "item_reference", "id": "item_9"}], conversation.get)


def test_function_calls_and_outputs_become_tool_calls_and_tool_messages() -> None:
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"q": "a"}'},
        {"type": "function_call", "call_id": "call_2", "name": "lookup", "arguments": '{"q": "b"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": '{"r": 1}'},
        {"type": "function_call_output", "call_id": "call_2", "output": '{"r": 2}'},
        {"type": "function_call", "call_id": "call_3", "name": "done", "arguments": ""},
    ]
    messages = chat_messages(None, items)
    assert messages[0]["content"] == "Checking."
    assert [c["id"] for c in messages[0]["tool_calls"]] == ["call_1", "call_2"]
    assert messages[0]["tool_calls"][1]["function"] == {"name": "lookup", "arguments": '{"q": "b"}'}
    assert messages[1:3] == [
        {"role": "tool", "tool_call_id": "call_1", "content": '{"r": 1}'},
        {"role": "tool", "tool_call_id": "call_2", "content": '{"r": 2}'},
    ]
    assert messages[3]["role"] == "assistant" and messages[3]["content"] is None
    assert messages[3]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_an_image_makes_the_content_a_part_list() -> None:
    items = [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ],
        }
    ]
    assert chat_messages(None, items)[0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ]


@pytest.mark.parametrize(("given", "expected"), [("inf", None), (None, None), (1, 1), (4096, 4096)])
def test_max_output_tokens_maps_to_max_tokens(given: int | str | None, expected: int | None) -> None:
    assert max_tokens_from(given) == expected


def test_a_max_output_tokens_string_other_than_inf_is_refused() -> None:
    with pytest.raises(ValueError, match="'lots'"):
        max_tokens_from("lots")
