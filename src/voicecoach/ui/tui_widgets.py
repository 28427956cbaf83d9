"""The widgets of the main screen: status bar, transcript and event log. They render; the app decides."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, RichLog, Static

from ..coach.conversation import Message
from .tui_view import LogEntry, StatusModel, render_message

TRANSCRIPT_MAX_MESSAGES = 2000
EVENT_LOG_MAX_LINES = 500


class StatusBar(Static):
    """One line: connection, listening/speaking/muted indicators, hint latency, where the voice goes, whether the
    microphone is echo-cancelled, model, cost.

    Rendered to the bar's width, so a narrow terminal drops the least needed fields instead of the cost.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self._status: StatusModel | None = None

    def show_status(self, status: StatusModel) -> None:
        self._status = status
        self.update(status.render(self.size.width or None))

    def on_resize(self) -> None:
        if self._status is not None:
            self.show_status(self._status)

    @property
    def text(self) -> str:
        """The bar's plain text as it is shown now."""
        return str(self.content)


@dataclass
class _Entry:
    """One message of the transcript: its styled text and, once laid out, its lines at the current width."""

    content: Text
    at: float  # when the words began (Message.started_at): entries read in the order they were spoken
    seq: int  # arrival order, for ties
    strips: list[Strip] | None = None


class Transcript(ScrollView, can_focus=True):
    """The live transcript, one entry per message (keyed by role and ``item_id``), in the order spoken.

    Both speakers' turns interleave by when they began (``Message.started_at``), not by when their transcript
    came: the other side's question, transcribed on its own link, lands above the user's answer even when it
    completes later. A message that becomes blank once done (the coach's own voice heard on "them") is removed.

    A line-API widget rather than one widget per message: with a widget per line, every delta re-laid out
    every line on screen, and at ~1000 messages a burst of deltas made keys lag by seconds. Here an update
    re-wraps only the changed message and a refresh renders only the visible rows.

    Autoscroll uses Textual's anchor: while anchored the view follows new lines; scrolling up releases the
    anchor (so the user can read back in peace) and scrolling back to the bottom restores it. At most
    ``max_messages`` messages are kept (the full transcript is the Store's job).
    """

    def __init__(self, *, max_messages: int = TRANSCRIPT_MAX_MESSAGES, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_messages = max_messages
        # Keyed by (role, item_id): user item ids and coach response ids are separate namespaces.
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._order: list[tuple[float, int, tuple[str, str]]] = []  # sorted: (at, seq, key)
        self._seq = 0
        self._rows: list[Strip] = []
        self._width = 0
        self._style = Style()

    def on_mount(self) -> None:
        self.anchor()

    def on_resize(self) -> None:
        self._reflow()

    @property
    def following(self) -> bool:
        """True while new lines scroll into view (the user has not scrolled up)."""
        return self.is_anchored and not self._anchor_released

    def upsert(self, updates: Iterable[tuple[Message, bool]]) -> None:
        """Create or update the entry of each message, in order; drop the oldest beyond ``max_messages``."""
        for message, final in updates:
            key: tuple[str, str] = (message.role, message.item_id)
            entry = self._entries.get(key)
            shown = bool(message.text.strip()) or message.interrupted
            if entry is not None and not shown and (final or message.done):
                self._remove(key)  # retracted: the line a delta started is no one's words after all
            elif entry is not None:
                entry.content, entry.strips = render_message(message, final), None
                if entry.at != message.started_at:  # its start became known after its first words
                    self._order.remove((entry.at, entry.seq, key))
                    entry.at = message.started_at
                    bisect.insort(self._order, (entry.at, entry.seq, key))
            elif shown:
                self._seq += 1
                self._entries[key] = _Entry(render_message(message, final), message.started_at, self._seq)
                bisect.insort(self._order, (message.started_at, self._seq, key))
        while len(self._entries) > self.max_messages:
            self._remove(self._order[0][2])
        self._reflow()

    def _remove(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key)
        self._order.remove((entry.at, entry.seq, key))

    def text_of(self, item_id: str, role: str = "user") -> str | None:
        entry = self._entries.get((role, item_id))
        return None if entry is None else entry.content.plain

    def lines(self) -> list[str]:
        """The plain text of every message kept, oldest first (one string per message, unwrapped)."""
        return [self._entries[key].content.plain for _at, _seq, key in self._order]

    def _reflow(self) -> None:
        width = self.scrollable_content_region.width
        if width <= 0:
            return  # not laid out yet; on_resize will come
        rewrap = width != self._width
        self._width = width
        console = self.app.console
        options = console.options.update(width=width, no_wrap=False, overflow="fold")
        rows: list[Strip] = []
        for _at, _seq, key in self._order:
            entry = self._entries[key]
            if entry.strips is None or rewrap:
                entry.strips = [Strip(line) for line in console.render_lines(entry.content, options, pad=False)]
            rows.extend(entry.strips)
        self._rows = rows
        self.virtual_size = Size(width, len(rows))
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        # rich_style walks every ancestor's styles; compute it once per render pass, not once per row.
        self._style = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        style = self._style
        row = scroll_y + y
        if row >= len(self._rows):
            return Strip.blank(width, style)
        return self._rows[row].crop_extend(scroll_x, scroll_x + width, style).apply_style(style)


class EventLog(Vertical):
    """Notices, metrics and sent events, newest at the bottom, filtered by a substring of their kind.

    Entries are kept in a bounded deque whether or not the log is visible; the RichLog is only written while
    visible (and rebuilt when shown or when the filter changes), so a hidden log costs an append per event.
    """

    def __init__(self, *, max_lines: int = EVENT_LOG_MAX_LINES, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: deque[LogEntry] = deque(maxlen=max_lines)
        self.filter = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter by type (e.g. error, metric, hint, sent)", id="log-filter", compact=True)
        yield RichLog(
            max_lines=self.entries.maxlen, min_width=20, wrap=True, markup=False, highlight=False, id="log-lines"
        )

    def add(self, entries: Iterable[LogEntry]) -> None:
        fresh = list(entries)
        self.entries.extend(fresh)
        if self.display:
            # Only the newest entries that still fit matter; older ones would be dropped by max_lines anyway.
            self._write([e for e in fresh if e.matches(self.filter)][-(self.entries.maxlen or 0) :])

    def visible_lines(self) -> list[str]:
        """The plain text of the entries the current filter lets through (what the log shows when visible)."""
        return [e.render().plain for e in self.entries if e.matches(self.filter)]

    def rebuild(self) -> None:
        log = self.query_one("#log-lines", RichLog)
        log.clear()
        self._write([e for e in self.entries if e.matches(self.filter)])

    def _write(self, entries: list[LogEntry]) -> None:
        log = self.query_one("#log-lines", RichLog)
        # An explicit width: RichLog otherwise measures against the console's width, which need not be ours.
        width = log.scrollable_content_region.width or None
        for entry in entries:
            log.write(entry.render(), width=width)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter = event.value.strip()
        self.rebuild()
