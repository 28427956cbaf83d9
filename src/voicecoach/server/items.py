"""Client-supplied conversation items (``conversation.item.create``, inline ``response.input``) → :class:`Item`.

The payload has already passed the allow-list (:data:`~voicecoach.server.validation.ITEM`); this module only
normalises it to the GA wire vocabulary and decodes inline audio so that its duration counts in usage.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .codec import decode_audio
from .conversation import Item
from .ids import IdFactory
from .usage import fingerprint


def item_from_wire(entry: dict[str, Any], *, input_format: dict[str, Any], param: str, ids: IdFactory) -> Item:
    """Build an item from a validated payload. Inline audio is decoded with the session's input format.

    Items without an ``id`` get a fresh ``item_…`` id; the caller decides whether the item joins the
    conversation.
    """
    item_id = entry.get("id") or ids.item()
    status = entry.get("status", "completed")
    kind = entry["type"]
    if kind == "function_call":
        fields = {"call_id": entry.get("call_id") or ids.base62("call_", 16), "name": entry["name"]}
        fields["arguments"] = entry["arguments"]
        return Item(item_id, kind, status=status, fields=fields)
    if kind == "function_call_output":
        return Item(item_id, kind, status=status, fields={"call_id": entry["call_id"], "output": entry["output"]})
    role = entry["role"]
    content: list[dict[str, Any]] = []
    audio: list[Any] = []
    for index, part in enumerate(entry["content"]):
        ptype = part["type"]
        if ptype == "input_audio":
            content.append({"type": "input_audio", "transcript": part.get("transcript")})
            if part.get("audio"):
                audio.append(decode_audio(part["audio"], input_format, f"{param}.content[{index}].audio"))
        elif ptype == "input_image":
            content.append(dict(part))
        elif role == "assistant":
            # Assistant audio cannot be created; its text stands in (the payload must carry ``text``).
            content.append({"type": "output_text", "text": part["text"]})
        else:
            content.append({"type": "input_text", "text": part["text"]})
    item = Item(item_id, "message", status=status, role=role, content=content)
    if audio:
        pcm = np.concatenate(audio)
        item.audio, item.audio_samples = pcm, int(pcm.size)
    return item


def inline_id(entry: dict[str, Any]) -> str:
    """A stable id for an id-less inline ``response.input`` item, so identical windows hit the prompt cache."""
    return entry.get("id") or "inline_" + fingerprint(entry)
