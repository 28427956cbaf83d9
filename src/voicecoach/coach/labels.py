"""The words a person reads for the coach's vocabulary: who spoke, and which kind of hint. The one place for both.

Every view, the report and the session files name speakers and tiers through here, so that "You" in the live
transcript is "You" in the saved one, and a third speaker (the other side of a call) is added in one line.
"""

from __future__ import annotations

from typing import Final

from .conversation import Message, Role
from .settings import Tier

# "them" is the default; the setting ``them_label`` ("Interviewer") names the other side in each message
# (``Message.label``), which :func:`message_label` prefers.
SPEAKER_LABELS: Final[dict[Role, str]] = {"user": "You", "coach": "Coach", "them": "Them"}
TIER_LABELS: Final[dict[Tier, str]] = {"quick": "quick hint", "full": "full guidance"}
# The journal's speaker names (session files say "you"/"them"; hints are their own kind of record).
JOURNAL_SPEAKERS: Final[dict[Role, str]] = {"user": "you", "them": "them"}


def speaker_label(role: Role) -> str:
    """ "You", "Them" or "Coach"."""
    return SPEAKER_LABELS[role]


def message_label(message: Message) -> str:
    """Who said ``message``, as a reader sees it: its own label (``them_label``) if it has one, else its role's."""
    return message.label or SPEAKER_LABELS[message.role]


def tier_label(tier: str | None) -> str | None:
    """ "quick hint" or "full guidance"; None for a tier that is unknown (or not given)."""
    # Any string may come in (a session file's tier), hence no dict lookup typed by Tier.
    return next((label for known, label in TIER_LABELS.items() if known == tier), None)


TRANSPORT_LABELS: Final[dict[str, str]] = {"webrtc": "WebRTC", "websocket": "WebSocket"}


def transport_label(transport: str) -> str:
    """ "WebRTC" or "WebSocket" (any other transport by its own name)."""
    return TRANSPORT_LABELS.get(transport, transport)
