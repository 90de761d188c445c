"""The message list: a virtual, line-API view over a window of one conversation.

Only a window of at most `MAX_WINDOW` messages is in memory; older and newer pages come
from SQLite as the user scrolls. Rendered lines live in an LRU cache, and `virtual_size`
is the window's line count, so a 100,000-message conversation costs what one page does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import ClassVar, Literal

from rich._wrap import divide_line  # what Text.wrap uses; Textual imports it too
from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip

from chat_tui.protocol.conversations import Conversation
from chat_tui.store.cache import Store
from chat_tui.store.records import StatusChange, StoredMessage
from chat_tui.tui.formatting import TIME_STYLE, clock, day_label, sender_colour, status_tick
from chat_tui.tui.literal import literal_text

PAGE = 100
"""Messages fetched from SQLite at a time."""
MAX_WINDOW = 3 * PAGE
"""Messages kept in memory: the visible ones and about a page either side."""
PREFETCH_LINES = 20
"""Fetch the next page when the viewport comes this close to the window's edge."""
CONTEXT_BEFORE_UNREAD = 10
TIME_WIDTH = 6  # "HH:MM "
STRIP_CACHE = 256
"""Messages whose rendered lines are kept (more than any screen shows at once)."""


@dataclass(frozen=True)
class _Line:
    kind: Literal["day", "new", "message"]
    index: int
    """Which message (the one a separator stands before), counted from the first
    message ever laid out since the last full layout: `MessageView._first_index` is
    the count of those dropped from the window since, so dropping needs no renumbering."""
    row: int = 0


class MessageView(ScrollView, can_focus=True):
    """Messages of the open conversation, newest at the bottom."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "select_previous", "Previous message", show=False),
        Binding("down,j", "select_next", "Next message", show=False),
        Binding("end", "jump_to_newest", "Newest"),
        Binding("i,enter", "details", "Message details"),
        Binding("escape", "leave", "Back to composer", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "message-view--selected",
        "message-view--day",
        "message-view--new",
    }

    DEFAULT_CSS = """
    MessageView {
        height: 1fr;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    MessageView > .message-view--selected { background: $primary 30%; }
    MessageView > .message-view--day { color: $text-muted; }
    MessageView > .message-view--new { color: $error; text-style: bold; }
    """

    tail: var[bool] = var(True)
    """Whether the view follows the newest message."""

    @dataclass
    class Seen(Message):
        """Messages up to `seq` are on screen."""

        conversation: Conversation
        seq: int

    @dataclass
    class PendingChanged(Message):
        """How many new messages arrived below the viewport while scrolled up."""

        count: int

    @dataclass
    class DetailsRequested(Message):
        message: StoredMessage

    @dataclass
    class Left(Message):
        """The user pressed Escape: focus should go back to the composer."""

    def __init__(self, store: Store, zone: tzinfo | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._store = store
        self._zone = zone
        self.conversation: Conversation | None = None
        self._messages: list[StoredMessage] = []
        self._lines: list[_Line] = []
        self._line_of_seq: dict[int, int] = {}
        """The first message line of each seq, counted like `_first_line`."""
        self._first_index = 0
        """`_Line.index` of the window's first message."""
        self._first_line = 0
        """The number `_line_of_seq` gives the first of `_lines`."""
        self._layout_width = 0
        # Rendered messages: a few screenfuls. Each Strip carries its own caches (about
        # 15 objects the garbage collector walks), so a large cache makes every full
        # collection slower: 2,048 entries made 150 ms pauses during a backlog drain.
        self._strip_cache: LRUCache[tuple[object, ...], list[Strip]] = LRUCache(STRIP_CACHE)
        # Row counts without the strips: layout needs every count, rendering only
        # what is on screen.
        self._rows_cache: LRUCache[tuple[object, ...], int] = LRUCache(4096)
        self._day_cache: LRUCache[int, str] = LRUCache(4096)
        self._has_older = False
        self._at_newest = True
        self._divider_seq: int | None = None
        self._selected: int | None = None
        self._pending = 0
        self._loading = False
        self._last_seen = 0
        self._frame_style: Style | None = None

    # --- public API --------------------------------------------------------------------

    @property
    def messages(self) -> Sequence[StoredMessage]:
        """The window currently in memory, oldest first."""
        return self._messages

    @property
    def line_count(self) -> int:
        return len(self._lines)

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def selected_message(self) -> StoredMessage | None:
        if self._selected is None or not 0 <= self._selected < len(self._messages):
            return None
        return self._messages[self._selected]

    async def open(self, conversation: Conversation, last_read_seq: int, unread: int) -> None:
        """Show `conversation`: its newest page, or the page around the first unread."""
        self.conversation = conversation
        self._selected = None
        self._pending = 0
        self._last_seen = last_read_seq
        if unread > PAGE - CONTEXT_BEFORE_UNREAD:
            before = await self._store.history(
                conversation, before_seq=last_read_seq + 1, limit=CONTEXT_BEFORE_UNREAD
            )
            after = await self._store.history(conversation, after_seq=last_read_seq, limit=PAGE)
            messages = before + after
            self._has_older = len(before) == CONTEXT_BEFORE_UNREAD
            self._at_newest = len(after) < PAGE
        else:
            messages = await self._store.history(conversation, limit=PAGE)
            self._has_older = len(messages) == PAGE
            self._at_newest = True
        if self.conversation != conversation:
            return  # another open() overtook this one
        self._messages = messages
        self._divider_seq = next(
            (m.seq for m in messages if m.seq > last_read_seq and not m.outgoing), None
        )
        self._relayout()
        self._scroll_to_start_position()
        self.post_message(self.PendingChanged(0))

    def append(self, messages: Sequence[StoredMessage], *, reader_present: bool) -> None:
        """New messages of the open conversation, in seq order."""
        newest = self._messages[-1].seq if self._messages else 0
        fresh = [m for m in messages if m.conversation == self.conversation and m.seq > newest]
        if not fresh:
            return
        incoming = [m for m in fresh if not m.outgoing]
        # The tail flag, not the scroll position: a batch may land before the previous
        # one has scrolled the view down.
        was_tail = self._at_newest and self.tail
        if not self._at_newest:
            self._set_pending(self._pending + len(incoming))
            return
        divider_before = self._divider_seq
        if incoming and self._divider_seq is None and not (was_tail and reader_present):
            self._divider_seq = incoming[0].seq
        if any(m.outgoing for m in fresh):
            # The user answered: what came before counts as seen.
            self._divider_seq = None
        anchor = self._anchor()
        start = len(self._messages)
        self._messages.extend(fresh)
        moved_divider = divider_before is not None and divider_before != self._divider_seq
        if moved_divider or self._layout_width != self._wrap_width():
            # The divider line among the laid-out messages went, or the width changed.
            self._relayout()
        else:
            # Only the new messages are laid out: a batch costs what it brings.
            self._lay_out(start)
        if len(self._messages) > MAX_WINDOW:
            self._drop_oldest(len(self._messages) - MAX_WINDOW)
        self._update_virtual_size()
        if was_tail or any(m.outgoing for m in fresh):
            self._scroll_to_end()
        else:
            self._restore_anchor(anchor)
            self._set_pending(self._pending + len(incoming))

    def update_statuses(self, changes: Sequence[StatusChange]) -> None:
        """Receipts or confirms changed own messages: redraw their ticks."""
        by_id = {change.message_id: change for change in changes}
        touched = False
        for i, message in enumerate(self._messages):
            change = by_id.get(message.message_id)
            if change is None:
                continue
            self._messages[i] = dataclasses.replace(
                message,
                status=change.status,
                delivered_count=change.delivered_count,
                read_count=change.read_count,
                recipient_count=change.recipient_count,
                error=change.error,
            )
            touched = True
        if touched:
            anchor = self._anchor()
            tail = self.tail and self._at_newest
            self._relayout()
            if tail:
                self._scroll_to_end()
            else:
                self._restore_anchor(anchor)
            self.refresh()

    def visible_newest_seq(self) -> int:
        """The highest seq with a line inside the viewport (0 when nothing is shown)."""
        if not self._lines or not self.size.height:
            return 0
        top = self.scroll_offset.y
        bottom = min(len(self._lines), top + self.scrollable_content_region.height)
        newest = 0
        for index in range(top, bottom):
            line = self._lines[index]
            if line.kind == "message":
                newest = max(newest, self._message_at(line).seq)
        return newest

    def report_seen(self) -> None:
        """Tell the screen which messages are now on screen."""
        if self.conversation is None:
            return
        newest = self.visible_newest_seq()
        if newest > self._last_seen:
            self._last_seen = newest
            self.post_message(self.Seen(self.conversation, newest))

    def forget_seen(self) -> None:
        """The reader was away: report the visible messages again when they return."""
        self._last_seen = 0

    # --- layout ------------------------------------------------------------------------

    def _wrap_width(self) -> int:
        return max(self.scrollable_content_region.width, TIME_WIDTH + 10)

    def _is_group(self) -> bool:
        return self.conversation is not None and self.conversation.kind == "group"

    def _cache_key(self, message: StoredMessage, width: int) -> tuple[object, ...]:
        return (
            message.seq,
            width,
            message.status,
            message.delivered_count,
            message.read_count,
            message.recipient_count,
        )

    def _row_count(self, message: StoredMessage, width: int) -> int:
        """How many lines a message takes, without rendering it when it can: layout
        needs every count, but only what is on screen gets rendered."""
        key = self._cache_key(message, width)
        rows = self._rows_cache.get(key)
        if rows is not None:
            return rows
        strips = self._strip_cache.get(key)
        if strips is not None:
            return len(strips)
        content = message.content
        text_width = width - TIME_WIDTH
        # isprintable(): no newline, tab or control character to expand, so the text
        # wraps exactly as its plain string does in `_message_strips`.
        if content.isprintable():
            length = cell_len(message.sender_id) + 1 + cell_len(content)
            if message.outgoing:
                length += 2 + status_tick(message, self._is_group()).cell_len
            if length <= text_width:
                rows = 1
            elif not message.outgoing:
                # Where the tick goes depends on the last line: own messages render.
                plain = f"{message.sender_id} {content}"
                rows = len(divide_line(plain, text_width, fold=True)) + 1
        if rows is None:
            rows = len(self._message_strips(message, width))
        self._rows_cache[key] = rows
        return rows

    def _message_strips(self, message: StoredMessage, width: int) -> list[Strip]:
        key = self._cache_key(message, width)
        cached = self._strip_cache.get(key)
        if cached is not None:
            return cached
        body = Text(end="")
        body.append(message.sender_id, Style(color=sender_colour(message.sender_id), bold=True))
        body.append(" ")
        body.append_text(literal_text(message.content))
        console = self.app.console
        text_width = width - TIME_WIDTH
        wrapped = list(body.wrap(console, text_width, overflow="fold"))
        if message.outgoing:
            # The tick is never split: it ends the last line, or gets a line of its own.
            tick = status_tick(message, self._is_group())
            last = wrapped[-1] if wrapped else Text(end="")
            if last.cell_len + 2 + tick.cell_len <= text_width:
                wrapped[-1] = Text.assemble(last, "  ", tick, end="")
            else:
                wrapped.append(tick)
        strips: list[Strip] = []
        for row, line in enumerate(wrapped):
            prefix = (
                Text(clock(message.sent_at, self._zone) + " ", TIME_STYLE, end="")
                if row == 0
                else Text(" " * TIME_WIDTH, end="")
            )
            full = Text.assemble(prefix, line, end="")
            strips.append(Strip(list(full.render(console)), full.cell_len))
        self._strip_cache[key] = strips
        return strips

    def _day(self, message: StoredMessage) -> str:
        day = self._day_cache.get(message.seq)
        if day is None:
            day = day_label(message.sent_at, self._zone)
            self._day_cache[message.seq] = day
        return day

    def _relayout(self) -> None:
        """Lay out the whole window again."""
        self._layout_width = self._wrap_width()
        self._lines = []
        self._line_of_seq = {}
        self._first_index = 0
        self._first_line = 0
        self._lay_out(0)
        self._update_virtual_size()

    def _lay_out(self, start: int) -> None:
        """Add the lines of the window's messages from `start` on to those before."""
        width = self._layout_width
        lines = self._lines
        line_of_seq = self._line_of_seq
        messages = self._messages
        previous_day = self._day(messages[start - 1]) if start else None
        for position in range(start, len(messages)):
            message = messages[position]
            index = position + self._first_index
            day = self._day(message)
            if day != previous_day:
                lines.append(_Line("day", index))
                previous_day = day
            if message.seq == self._divider_seq:
                lines.append(_Line("new", index))
            line_of_seq[message.seq] = len(lines) + self._first_line
            for row in range(self._row_count(message, width)):
                lines.append(_Line("message", index, row))

    def _drop_oldest(self, count: int) -> None:
        """Forget the `count` oldest messages of the window and their lines, without
        laying out the others again."""
        for message in self._messages[:count]:
            self._line_of_seq.pop(message.seq, None)
        del self._messages[:count]
        self._first_index += count
        lines = self._lines
        cut = 0
        while cut < len(lines) and lines[cut].index < self._first_index:
            cut += 1
        del lines[:cut]
        self._first_line += cut
        if self._messages and (not lines or lines[0].kind != "day"):
            # The new first message opens the window: it gets its day.
            lines.insert(0, _Line("day", self._first_index))
            self._first_line -= 1
        self._has_older = True
        if self._selected is not None:
            self._selected = max(0, self._selected - count)

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self._layout_width, len(self._lines))
        self.refresh()

    def _message_at(self, line: _Line) -> StoredMessage:
        return self._messages[line.index - self._first_index]

    def _line_of(self, seq: int) -> int | None:
        """Where in `_lines` the message `seq` starts (None when it is not in the window)."""
        number = self._line_of_seq.get(seq)
        return None if number is None else number - self._first_line

    def _anchor(self) -> tuple[int, int] | None:
        """The message at the top of the viewport and how far into it the viewport is."""
        top = self.scroll_offset.y
        if not self._lines or top >= len(self._lines):
            return None
        seq = self._message_at(self._lines[top]).seq
        start = self._line_of(seq)
        return seq, top - (top if start is None else start)

    def _restore_anchor(self, anchor: tuple[int, int] | None) -> None:
        if anchor is None:
            return
        seq, offset = anchor
        start = self._line_of(seq)
        if start is not None:
            self.scroll_to(y=start + offset, animate=False, immediate=True)

    def _at_bottom(self) -> bool:
        return self.scroll_offset.y >= self.max_scroll_y

    def _scroll_to_end(self) -> None:
        self.tail = self._at_newest
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        self.call_after_refresh(self._settle_at_end)

    def _settle_at_end(self) -> None:
        # The container size may only be known after layout; but if the user scrolled
        # up in between, stay where they went.
        if self.tail:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        self._after_scroll()

    def _scroll_to_start_position(self) -> None:
        def place() -> None:
            divider = next((i for i, line in enumerate(self._lines) if line.kind == "new"), None)
            height = self.scrollable_content_region.height
            if divider is not None and len(self._lines) - divider > height:
                self.scroll_to(y=max(0, divider - 1), animate=False, immediate=True)
                self.tail = False
            else:
                self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
                self.tail = self._at_newest
            self._after_scroll()

        place()
        self.call_after_refresh(place)

    # --- rendering ---------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # The widget's style is the same for every line of a frame, and costly to work out.
        self._frame_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._frame_style = None

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self._frame_style or self.rich_style
        index = scroll_y + y
        if index >= len(self._lines):
            return Strip.blank(width, base)
        line = self._lines[index]
        if line.kind == "message":
            strips = self._message_strips(self._message_at(line), self._layout_width)
            strip = strips[min(line.row, len(strips) - 1)]
            style = base
            if line.index - self._first_index == self._selected and self.has_focus:
                style = base + self.get_component_rich_style("message-view--selected")
            strip = strip.apply_style(style)
        elif line.kind == "day":
            label = self._day(self._message_at(line))
            strip = self._rule(label, width, "message-view--day")
        else:
            strip = self._rule("new messages", width, "message-view--new")
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _rule(self, label: str, width: int, component: str) -> Strip:
        text = f" {label} "
        fill = max(0, width - len(text))
        left = fill // 2
        rule = "─" * left + text + "─" * (fill - left)
        style = self.rich_style + self.get_component_rich_style(component)
        return Strip([*Text(rule, style, end="").render(self.app.console)], len(rule))

    # --- scrolling and paging ----------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._after_scroll(moved_up=new_value < old_value)

    def _after_scroll(self, moved_up: bool = False) -> None:
        if not self._lines or not self.scrollable_content_region.height:
            return  # not laid out yet: the position means nothing
        at_bottom = self._at_bottom()
        if at_bottom and self._at_newest:
            self.tail = True
        elif moved_up or not self._at_newest:
            self.tail = False
        if self.tail and self._pending:
            self._set_pending(0)
        if not self._loading:
            if self._has_older and self.scroll_offset.y < PREFETCH_LINES:
                self._load_older()
            elif not self._at_newest and self.scroll_offset.y > self.max_scroll_y - PREFETCH_LINES:
                self._load_newer()
        self.report_seen()

    def _set_pending(self, count: int) -> None:
        if count != self._pending:
            self._pending = count
            self.post_message(self.PendingChanged(count))

    @work(exclusive=True, group="paging")
    async def _load_older(self) -> None:
        conversation = self.conversation
        if conversation is None or not self._messages:
            return
        self._loading = True
        try:
            older = await self._store.history(
                conversation, before_seq=self._messages[0].seq, limit=PAGE
            )
        finally:
            self._loading = False
        if conversation != self.conversation:
            return
        self._has_older = len(older) == PAGE
        if not older:
            return
        anchor = self._anchor()
        self._messages[:0] = older
        if self._selected is not None:
            self._selected += len(older)
        overflow = len(self._messages) - MAX_WINDOW
        if overflow > 0:
            del self._messages[-overflow:]
            self._at_newest = False
            if self._selected is not None and self._selected >= len(self._messages):
                self._selected = len(self._messages) - 1
        self._relayout()
        self._restore_anchor(anchor)

    @work(exclusive=True, group="paging")
    async def _load_newer(self) -> None:
        conversation = self.conversation
        if conversation is None or not self._messages:
            return
        self._loading = True
        try:
            newer = await self._store.history(
                conversation, after_seq=self._messages[-1].seq, limit=PAGE
            )
        finally:
            self._loading = False
        if conversation != self.conversation:
            return
        if len(newer) < PAGE:
            self._at_newest = True
        anchor = self._anchor()
        self._messages.extend(newer)
        overflow = len(self._messages) - MAX_WINDOW
        if overflow > 0:
            del self._messages[:overflow]
            self._has_older = True
            if self._selected is not None:
                self._selected = max(0, self._selected - overflow)
        self._relayout()
        self._restore_anchor(anchor)
        self._after_scroll()

    def on_resize(self, event: events.Resize) -> None:
        tail = self.tail and self._at_newest
        anchor = self._anchor()
        self._relayout()
        if tail:
            self._scroll_to_end()
        else:
            self._restore_anchor(anchor)

    def on_focus(self, event: events.Focus) -> None:
        if self._selected is None and self._messages:
            self._select_visible_newest()
        self.refresh()

    def on_blur(self, event: events.Blur) -> None:
        self.refresh()

    # --- actions -----------------------------------------------------------------------

    def _select_visible_newest(self) -> None:
        top = self.scroll_offset.y
        bottom = min(len(self._lines), top + self.scrollable_content_region.height) - 1
        for index in range(bottom, top - 1, -1):
            if 0 <= index < len(self._lines) and self._lines[index].kind == "message":
                self._selected = self._lines[index].index - self._first_index
                return
        self._selected = len(self._messages) - 1 if self._messages else None

    def _show_selected(self) -> None:
        message = self.selected_message
        if message is None:
            return
        start = self._line_of(message.seq)
        if start is None:
            return
        rows = len(self._message_strips(message, self._layout_width))
        height = self.scrollable_content_region.height
        if start < self.scroll_offset.y:
            self.scroll_to(y=max(0, start - 1), animate=False, immediate=True)
        elif start + rows > self.scroll_offset.y + height:
            self.scroll_to(y=start + rows - height, animate=False, immediate=True)
        self.refresh()

    def action_select_previous(self) -> None:
        if not self._messages:
            return
        if self._selected is None:
            self._select_visible_newest()
        elif self._selected > 0:
            self._selected -= 1
        self._show_selected()

    def action_select_next(self) -> None:
        if not self._messages:
            return
        if self._selected is None:
            self._select_visible_newest()
        elif self._selected < len(self._messages) - 1:
            self._selected += 1
        self._show_selected()

    def action_jump_to_newest(self) -> None:
        """End: back to the newest message (reloading the last page if it was paged out)."""
        self._selected = None
        if self._at_newest:
            self._scroll_to_end()
            self._set_pending(0)
        else:
            self._reload_newest()

    @work(exclusive=True, group="paging")
    async def _reload_newest(self) -> None:
        conversation = self.conversation
        if conversation is None:
            return
        messages = await self._store.history(conversation, limit=PAGE)
        if conversation != self.conversation:
            return
        self._messages = messages
        self._has_older = len(messages) == PAGE
        self._at_newest = True
        self._relayout()
        self._scroll_to_end()
        self._set_pending(0)

    def action_details(self) -> None:
        message = self.selected_message
        if message is not None:
            self.post_message(self.DetailsRequested(message))

    def action_leave(self) -> None:
        self._selected = None
        self.refresh()
        self.post_message(self.Left())
