"""The meeting transcript, built from server events: both speakers' turns by item id, coach hints by response id.

Pure: no I/O and no clock; every method takes ``now`` (monotonic seconds) from the caller.

Two speakers: the user ("user", the microphone's link) and the other side of the call ("them", a second,
transcription-only link). Each link names its items independently, so messages are keyed by (role, id). A turn
whose start is known (``input_audio_buffer.speech_started``, converted to the coach's clock by
:mod:`.channels`) is placed by :meth:`Conversation.spoken` at the moment it was *spoken*, not when its transcript
arrived: the other side's transcript may complete a second after the user's reply to it, and still reads first.

Memory is bounded for long meetings: at most ``max_messages`` messages are kept and the oldest (first in
conversation order) is evicted. Messages live in a doubly linked list keyed by id, so inserting after a known
item, evicting the oldest and reading the last ``n`` messages (:meth:`Conversation.window`) cost O(1) or O(n)
and never O(meeting length).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

Role = Literal["user", "coach", "them"]
DEFAULT_MAX_MESSAGES = 2000


@dataclass
class Message:
    """One line of the transcript.

    For a user turn ``item_id`` is the conversation item id; for a coach hint it is the *response* id (hints are
    out-of-band responses, which never become items of the server's conversation). ``tier`` is ``"quick"`` or
    ``"full"`` for coach hints. ``started_at`` is when the words began (on the coach's clock) where the server
    said (speech started), else when the message was first heard of; messages are ordered by it. ``label`` names
    the speaker where it is a setting (``them_label``: "Interviewer"); None means the role's own label.
    ``audible_until``: for a hint, when its playback ended (None while it plays, or if it never did).
    A hint cut short (:meth:`Conversation.coach_cut`) has ``text`` = the words that were played, so that views,
    session files and later hint windows carry what the person heard; ``generated_text`` is then everything the
    model generated before the cut, ``played_ms`` what was heard of it and ``trim`` how the two were matched
    (:mod:`.played`). Messages handed out are the live objects: read them, do not mutate them.
    """

    item_id: str
    role: Role
    text: str
    done: bool
    tier: str | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    interrupted: bool = False
    label: str | None = None
    audible_until: float | None = None
    generated_text: str | None = None
    played_ms: float | None = None
    trim: str | None = None


_Key = tuple[Role, str]  # user item ids and response ids are separate namespaces


@dataclass
class _Node:
    message: Message
    prev: _Key | None = None
    next: _Key | None = None


class Conversation:
    """The transcript, built from server events (by item id, in conversation order).

    Every event method is idempotent or tolerant of order: a delta may arrive before (or without) the item's
    ``conversation.item.added``, and events for unknown ids create the message rather than fail.
    """

    def __init__(self, max_messages: int = DEFAULT_MAX_MESSAGES) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages}")
        self.max_messages = max_messages
        self._nodes: dict[_Key, _Node] = {}
        self._head: _Key | None = None
        self._tail: _Key | None = None

    # --- user turns -----------------------------------------------------------------------------------

    def user_item(self, item_id: str, previous_item_id: str | None, now: float) -> None:
        """A user item was added (``conversation.item.added``). Known ids are ignored.

        It goes after ``previous_item_id`` when that is known, and after any coach hints that follow it (hints
        are local, so the server's order says nothing about them and they keep their arrival order); else last.
        """
        key: _Key = ("user", item_id)
        if key in self._nodes:
            return
        after = self._tail
        anchor: _Key = ("user", previous_item_id or "")
        if previous_item_id is not None and anchor in self._nodes:
            after = anchor
            following = self._nodes[anchor].next
            while following is not None and following[0] == "coach":
                after = following
                following = self._nodes[following].next
        self._insert(Message(item_id, "user", "", done=False, started_at=now), after)

    def spoken(self, role: Role, item_id: str, at: float, now: float) -> Message:
        """A turn began at ``at`` (``speech_started``): create it there, among the others by start time.

        A message already known (a delta came first) is moved to its place. Walks back from the newest message
        past those that started later: O(1) for the usual in-order turn, bounded by the overlap otherwise.
        Ties keep arrival order.
        """
        key: _Key = (role, item_id)
        node = self._nodes.get(key)
        if node is not None:
            message = node.message
            self._unlink(key)
        else:
            message = Message(item_id, role, "", done=False, started_at=at)
        message.started_at = min(at, now)  # never in the future: a wrong audio epoch must not reorder the past
        after = self._tail
        while after is not None and self._nodes[after].message.started_at > message.started_at:
            after = self._nodes[after].prev
        self._insert(message, after)
        return message

    def delta(self, role: Role, item_id: str, delta: str, now: float) -> Message:
        """Append streamed transcription text. A delta after completion is ignored (the final text wins)."""
        message = self._get_or_append((role, item_id), now)
        if not message.done:
            message.text += delta
        return message

    def completed(self, role: Role, item_id: str, transcript: str, now: float) -> Message:
        """The final transcript replaces whatever the deltas built."""
        message = self._get_or_append((role, item_id), now)
        message.text = transcript
        message.done = True
        message.ended_at = now
        return message

    def failed(self, role: Role, item_id: str, now: float) -> Message:
        """Transcription failed: the turn is done with no text (so windows skip it)."""
        return self.completed(role, item_id, "", now)

    def user_delta(self, item_id: str, delta: str, now: float) -> Message:
        return self.delta("user", item_id, delta, now)

    def user_completed(self, item_id: str, transcript: str, now: float) -> Message:
        return self.completed("user", item_id, transcript, now)

    def user_failed(self, item_id: str, now: float) -> None:
        self.failed("user", item_id, now)

    # --- coach hints ----------------------------------------------------------------------------------

    def coach_started(self, response_id: str, tier: str | None, now: float) -> Message:
        """A hint response was created. Idempotent; a tier given later fills one that was unknown."""
        message = self._get_or_append(("coach", response_id), now)
        if tier is not None:
            message.tier = tier
        return message

    def coach_delta(self, response_id: str, delta: str, now: float) -> Message:
        """Append streamed hint transcript; ignored once the hint is done."""
        message = self._get_or_append(("coach", response_id), now)
        if not message.done:
            message.text += delta
        return message

    def coach_done(self, response_id: str, transcript: str | None, now: float, interrupted: bool = False) -> Message:
        """The hint ended. A transcript, when given, replaces the streamed text; ``None`` keeps it.

        May be called again (e.g. the transcript is done, then the user interrupts the playback): ``interrupted``
        is sticky, and ``ended_at`` moves to the moment of the interruption.
        """
        message = self._get_or_append(("coach", response_id), now)
        if transcript is not None and message.generated_text is None:  # a cut hint keeps its played words
            message.text = transcript
        if not message.done or (interrupted and not message.interrupted):
            message.ended_at = now
        if interrupted and not message.interrupted:
            message.audible_until = now  # an interrupt flushes the player: its sound ends here
        message.done = True
        message.interrupted = message.interrupted or interrupted
        return message

    def coach_cut(self, response_id: str, played: str, played_ms: float, trim: str, now: float) -> Message:
        """The hint was cut short after ``played_ms`` of its audio: its text becomes ``played`` (a prefix of the
        text so far, which is kept as ``generated_text``). Interrupted, as :meth:`coach_done`; only the first
        cut counts (the text no longer grows once cut)."""
        message = self.coach_done(response_id, None, now, interrupted=True)
        if message.generated_text is None:
            message.generated_text, message.text = message.text, played
            message.played_ms, message.trim = played_ms, trim
        return message

    def coach_silent(self, response_id: str, now: float) -> None:
        """The hint's playback ended (not cut: :meth:`coach_done` with ``interrupted`` says that). Unknown: ignored."""
        node = self._nodes.get(("coach", response_id))
        if node is not None and node.message.audible_until is None:
            node.message.audible_until = now

    # --- edits and reads ------------------------------------------------------------------------------

    def remove(self, item_id: str, role: Role = "user") -> None:
        """An item was deleted (``conversation.item.deleted``) or dropped. Unknown ids are ignored."""
        key: _Key = (role, item_id)
        if key in self._nodes:
            self._unlink(key)

    def recent(self, n: int) -> list[Message]:
        """The last ``n`` messages, blank ones included, newest first (O(n))."""
        out: list[Message] = []
        for message in self._backwards():
            if len(out) == n:
                break
            out.append(message)
        return out

    def window(self, n: int) -> list[Message]:
        """The last ``n`` messages with non-blank text, oldest first; ``n <= 0`` gives ``[]``.

        Walks back from the newest message, so the cost is n plus the blank messages skipped on the way (failed
        or still silent turns: few), independent of how long the meeting has been.
        """
        found: list[Message] = []
        if n <= 0:
            return found
        for message in self._backwards():
            if message.text.strip():
                found.append(message)
                if len(found) == n:
                    break
        found.reverse()
        return found

    def messages(self) -> list[Message]:
        """All kept messages in conversation order (O(len))."""
        out: list[Message] = []
        key = self._head
        while key is not None:
            node = self._nodes[key]
            out.append(node.message)
            key = node.next
        return out

    def __len__(self) -> int:
        return len(self._nodes)

    # --- the linked list ------------------------------------------------------------------------------

    def _backwards(self) -> Iterator[Message]:
        key = self._tail
        while key is not None:
            node = self._nodes[key]
            yield node.message
            key = node.prev

    def _get_or_append(self, key: _Key, now: float) -> Message:
        node = self._nodes.get(key)
        if node is not None:
            return node.message
        role, ident = key
        message = Message(ident, role, "", done=False, started_at=now)
        self._insert(message, self._tail)
        return message

    def _insert(self, message: Message, after: _Key | None) -> None:
        """Link ``message`` after ``after`` (None: at the head), then evict from the head down to the bound."""
        key: _Key = (message.role, message.item_id)
        node = _Node(message)
        if after is None:
            node.next = self._head
            if self._head is not None:
                self._nodes[self._head].prev = key
            self._head = key
        else:
            before = self._nodes[after]
            node.prev, node.next = after, before.next
            if before.next is not None:
                self._nodes[before.next].prev = key
            before.next = key
        if node.next is None:
            self._tail = key
        self._nodes[key] = node
        while len(self._nodes) > self.max_messages and self._head is not None:
            log.debug("transcript full (%d): evicting %s", self.max_messages, self._head)
            self._unlink(self._head)

    def _unlink(self, key: _Key) -> None:
        node = self._nodes.pop(key)
        if node.prev is not None:
            self._nodes[node.prev].next = node.next
        else:
            self._head = node.next
        if node.next is not None:
            self._nodes[node.next].prev = node.prev
        else:
            self._tail = node.prev
