"""A Realtime response's prompt (instructions + input items) as Chat Completions ``messages``.

Pure: dicts in, dicts out. The items are in the GA wire vocabulary (realtime-protocol.md §3.6), as the server
stores them (``Item.wire()``) or as a client sends them inline in ``response.create``'s ``input``:

=====================================================  ======================================================
Realtime                                               Chat Completions
=====================================================  ======================================================
``instructions`` (the response's, else the session's)  the first message, ``role: system``
message, role user/system/assistant                    the same role; its text parts joined by newlines
  ``input_text`` / ``output_text`` / ``text``          their ``text``
  ``input_audio`` / ``output_audio`` / ``audio``       their ``transcript`` (the words; the sound is not sent)
  ``input_image``                                      an ``image_url`` part (content becomes a part list)
``function_call``                                      ``tool_calls`` of an assistant message (consecutive
                                                       calls, or calls right after an assistant message,
                                                       join that message: one assistant turn)
``function_call_output``                               ``role: tool`` with ``tool_call_id``
``item_reference``                                     the referenced item, through ``resolve``
=====================================================  ======================================================

A message with nothing to say (audio whose transcript is still missing) is left out: a chat server would get
an empty turn and some chat templates reject those. Unknown item types are left out the same way (the
Realtime model has nothing to say about them either). Part order inside a message is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

Resolve = Callable[[str], dict[str, Any] | None]

_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_AUDIO_PARTS = frozenset({"input_audio", "output_audio", "audio"})
_ROLES = frozenset({"user", "system", "assistant"})


def max_tokens_from(max_output_tokens: int | str | None) -> int | None:
    """Realtime ``max_output_tokens`` (1..4096 or ``"inf"``) as chat ``max_tokens`` (None: the server's limit)."""
    if max_output_tokens is None or max_output_tokens == "inf":
        return None
    if isinstance(max_output_tokens, str):
        raise ValueError(f"max_output_tokens must be an integer or 'inf', not {max_output_tokens!r}")
    return int(max_output_tokens)


def _content(parts: Iterable[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text parts as one string; as a part list only when there is an image (text-only servers need a string)."""
    pieces: list[dict[str, Any]] = []
    for part in parts:
        kind = part.get("type")
        if kind in _TEXT_PARTS and part.get("text"):
            pieces.append({"type": "text", "text": str(part["text"])})
        elif kind in _AUDIO_PARTS and part.get("transcript"):
            pieces.append({"type": "text", "text": str(part["transcript"])})
        elif kind == "input_image" and part.get("image_url"):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail"):
                image["detail"] = part["detail"]
            pieces.append({"type": "image_url", "image_url": image})
    if any(p["type"] != "text" for p in pieces):
        return pieces
    return "\n".join(p["text"] for p in pieces)


def _tool_call(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item.get("call_id") or item.get("id") or "",
        "type": "function",
        "function": {"name": item.get("name", ""), "arguments": item.get("arguments") or "{}"},
    }


def chat_messages(
    instructions: str | None, items: Iterable[dict[str, Any]], resolve: Resolve | None = None
) -> list[dict[str, Any]]:
    """The chat ``messages`` for a response with these ``instructions`` and ``input`` items (see the table).

    ``resolve`` looks up an ``item_reference``'s id (the server's conversation); an unknown id, or a reference
    with no ``resolve``, raises ``ValueError`` naming it: the server validates references before this, so it
    is a bug, not user input.
    """
    messages: list[dict[str, Any]] = []
    if instructions and instructions.strip():
        messages.append({"role": "system", "content": instructions})
    for item in items:
        if item.get("type") == "item_reference":
            ref = str(item.get("id"))
            found = resolve(ref) if resolve is not None else None
            if found is None:
                raise ValueError(f"item_reference {ref!r} is not in the conversation")
            item = found
        _add(messages, item)
    return messages


def _add(messages: list[dict[str, Any]], item: dict[str, Any]) -> None:
    kind = item.get("type")
    if kind == "message" and item.get("role") in _ROLES:
        content = _content(item.get("content") or [])
        if content:
            messages.append({"role": item["role"], "content": content})
        else:
            log.debug("chat: item %s has no text yet; left out", item.get("id"))
    elif kind == "function_call":
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(_tool_call(item))
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [_tool_call(item)]})
    elif kind == "function_call_output":
        output = str(item.get("output", ""))
        messages.append({"role": "tool", "tool_call_id": item.get("call_id", ""), "content": output})
    else:
        log.debug("chat: item type %r has no chat equivalent; left out", kind)
