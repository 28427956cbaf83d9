"""The default conversation: an ordered list of items, and how each item looks on the wire.

Items keep their audio (48 kHz mono) beside the wire content, because the model's context, usage and
``conversation.item.retrieved`` depend on it, while item events never carry it (GA items on the wire have no
``object`` key and no inline audio, realtime-protocol.md §4.2).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..audio.frames import WIRE_RATE, Pcm
from .codec import encode_pcm24
from .schema import WireError
from .usage import (
    ASSISTANT_AUDIO_TOKENS_PER_S,
    USER_AUDIO_TOKENS_PER_S,
    Segment,
    audio_tokens,
    fingerprint,
    text_tokens,
)

# conversation.item.retrieved carries the item's audio as base64 when it fits comfortably in one data-channel
# message (aiortc peers accept 256 KiB); longer audio is left out rather than breaking the channel.
MAX_RETRIEVED_AUDIO_CHARS = 200_000


@dataclass
class Item:
    id: str
    type: str  # "message" | "function_call" | "function_call_output"
    status: str = "completed"
    role: str | None = None
    content: list[dict[str, Any]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)  # call_id, name, arguments, output
    audio: Pcm | None = None  # user input audio, or the assistant audio generated so far
    audio_samples: int = 0  # usable audio length (shorter than ``audio`` after a truncation)

    @property
    def audio_ms(self) -> int:
        return self.audio_samples * 1000 // WIRE_RATE

    def wire(self) -> dict[str, Any]:
        """The item as item events show it."""
        out: dict[str, Any] = {"id": self.id, "type": self.type, "status": self.status}
        if self.type == "message":
            out["role"] = self.role
            out["content"] = copy.deepcopy(self.content)
        else:
            out.update(self.fields)
        return out

    def wire_with_audio(self) -> dict[str, Any]:
        """The item as ``conversation.item.retrieved`` shows it: audio parts carry base64 ``audio/pcm``."""
        out = self.wire()
        if self.audio is None or not self.audio_samples:
            return out
        encoded = encode_pcm24(self.audio[: self.audio_samples])
        if len(encoded) > MAX_RETRIEVED_AUDIO_CHARS:
            return out
        for part in out.get("content", []):
            if part.get("type") in ("input_audio", "output_audio"):
                part["audio"] = encoded
                break
        return out

    def segment(self) -> Segment:
        """This item as model input: its token counts and a key that changes when its content changes."""
        text = 0
        if self.type == "message":
            for part in self.content:
                text += text_tokens(part.get("text")) + (
                    text_tokens(part.get("transcript")) if part["type"] == "output_audio" else 0
                )
        else:
            text = sum(text_tokens(str(v)) for v in self.fields.values())
        per_second = ASSISTANT_AUDIO_TOKENS_PER_S if self.role == "assistant" else USER_AUDIO_TOKENS_PER_S
        audio = audio_tokens(self.audio_samples, per_second)
        return Segment(fingerprint(self.id, self.content, self.fields, self.audio_samples), text, audio)

    def transcript(self) -> str | None:
        for part in self.content:
            value = part.get("transcript") or part.get("text")
            if value:
                return str(value)
        return None


class Conversation:
    def __init__(self, conversation_id: str) -> None:
        self.id = conversation_id
        self._items: list[Item] = []

    def __iter__(self) -> Iterator[Item]:
        return iter(list(self._items))  # a snapshot: callers may change the conversation while iterating

    def __len__(self) -> int:
        return len(self._items)

    def get(self, item_id: str) -> Item | None:
        return next((i for i in self._items if i.id == item_id), None)

    def last_id(self) -> str | None:
        return self._items[-1].id if self._items else None

    def previous_id(self, item_id: str) -> str | None:
        for index, item in enumerate(self._items):
            if item.id == item_id:
                return self._items[index - 1].id if index else None
        return None

    def add(self, item: Item, previous_item_id: str | None = None, *, after: bool = False) -> str | None:
        """Insert ``item``; returns the id of the item now before it (``previous_item_id`` of the event).

        ``after=False`` appends. With ``after=True``, ``previous_item_id`` ``"root"`` (or None) inserts at the
        beginning, another id inserts after that item; an unknown id raises WireError.
        """
        if self.get(item.id) is not None:
            raise WireError(
                "invalid_value", f"Error adding item: an item with id '{item.id}' already exists.", "item.id"
            )
        if not after:
            previous = self.last_id()
            self._items.append(item)
            return previous
        if previous_item_id in (None, "root"):
            self._items.insert(0, item)
            return None
        for index, existing in enumerate(self._items):
            if existing.id == previous_item_id:
                self._items.insert(index + 1, item)
                return previous_item_id
        raise WireError(
            "item_create_invalid_previous_item_id",
            f"Error adding item: the previous item with id '{previous_item_id}' does not exist.",
            "previous_item_id",
        )

    def delete(self, item_id: str) -> None:
        item = self.get(item_id)
        if item is None:
            raise WireError(
                "item_delete_invalid_item_id",
                f"Error deleting item: the item with id '{item_id}' does not exist.",
                "item_id",
            )
        self._items.remove(item)
