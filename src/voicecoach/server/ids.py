"""Identifiers in the shapes the real Realtime API uses (realtime-protocol.md §4.2).

* ``event_`` + 21 base62 characters for ordinary server events,
* ``event_`` + 16 hex digits for the WebRTC-only ``output_audio_buffer.*`` events (a different generator on the
  real server, and some clients tell them apart by it),
* ``sess_``, ``conv_``, ``resp_``, ``item_`` + 21 base62,
* ``rtc_`` + 32 hex for call ids and ``ek_`` + 32 hex for ephemeral keys.

Ids come from one :class:`IdFactory` per session so that a test can seed it and get reproducible ids. Secrets
(``ek_``) never come from a seeded generator.
"""

from __future__ import annotations

import random
import secrets
import string

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


class IdFactory:
    """Makes ids. ``seed=None`` draws from the OS; a seed makes the sequence reproducible (tests)."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()

    def base62(self, prefix: str, length: int = 21) -> str:
        return prefix + "".join(self._rng.choice(_BASE62) for _ in range(length))

    def hex(self, prefix: str, digits: int) -> str:
        return prefix + "".join(self._rng.choice("0123456789abcdef") for _ in range(digits))

    def event(self) -> str:
        return self.base62("event_")

    def buffer_event(self) -> str:
        """Event id style of ``output_audio_buffer.*`` events."""
        return self.hex("event_", 16)

    def session(self) -> str:
        return self.base62("sess_")

    def conversation(self) -> str:
        return self.base62("conv_")

    def response(self) -> str:
        return self.base62("resp_")

    def item(self) -> str:
        return self.base62("item_")

    def obfuscation(self) -> str:
        """Padding for streaming deltas; the real server varies its length to hide the delta size."""
        return "".join(self._rng.choice(_BASE62) for _ in range(self._rng.randint(4, 16)))


def new_call_id() -> str:
    return "rtc_" + secrets.token_hex(16)


def new_ephemeral_key() -> str:
    return "ek_" + secrets.token_hex(16)
