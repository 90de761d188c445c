"""The message list: a virtual, line-API view over a window of one conversation.

The widget scrolls, follows the newest message (tail mode), selects, draws the
unread divider and reports what was seen. The data and the drawing are elsewhere:
`MessageWindow` pages the conversation in from a `HistorySource` (and, past the
oldest cached message, has an `OlderHistory` fill the cache), says when a page is
wanted and which message was opened at; `LineLayout` says what is on each line, and
`MessageRenderer` draws a message. Only the window is in
memory and only what is on screen is rendered, so a 100,000-message conversation
costs what one page does.

Over 400 lines because what is left is one thing: the viewport. Tail mode, the
anchor kept across a merge, the selection and the seen reports all read and move
the same scroll position, and Textual calls into each of them from its events.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import ClassVar

from rich.style import Style
from textual import events, work
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from chat_tui.core.cache_view import HistorySource
from chat_tui.core.records import StatusChange, StoredMessage
from chat_tui.protocol.conversations import Conversation
from chat_tui.tui.widgets.conversation.line_layout import LineLayout
from chat_tui.tui.widgets.conversation.message_render import TIME_WIDTH, MessageRenderer
from chat_tui.tui.widgets.conversation.message_window import (
    MAX_WINDOW,
    PAGE,
    MessageWindow,
    OlderHistory,
    OlderHistoryFailed,
)

__all__ = ["MAX_WINDOW", "PAGE", "MessageView"]

PREFETCH_LINES = 20
"""Read the next page when the viewport comes this close to the window's edge."""
LOADING_OLDER = "loading older messages"
"""The viewport's top line while older history is fetched into the cache."""


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
        "message-view--found",
        "message-view--loading",
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
    MessageView > .message-view--found { background: $warning 35%; }
    MessageView > .message-view--loading { color: $text-muted; text-style: italic; }
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

    @dataclass
    class OlderFailed(Message):
        """Older history could not be fetched: `error` says why."""

        error: Exception

    def __init__(
        self,
        history: HistorySource,
        zone: tzinfo | None = None,
        *,
        older: OlderHistory | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._window = MessageWindow(history, older)
        self._zone = zone
        self.conversation: Conversation | None = None
        """The conversation shown, or being opened."""
        self._divider_seq: int | None = None
        self._selected_seq: int | None = None
        self._pending = 0
        self._last_seen = 0
        self._frame_style: Style | None = None

    @functools.cached_property
    def renderer(self) -> MessageRenderer:
        """Draws the messages (and counts their rows) for this view."""
        return MessageRenderer(self.app.console, self._zone)

    @functools.cached_property
    def line_layout(self) -> LineLayout:
        """What is on each line of the window, as drawn."""
        return LineLayout(self.renderer.row_count, self.renderer.day_label)

    # --- public API --------------------------------------------------------------------

    @property
    def messages(self) -> Sequence[StoredMessage]:
        """The window currently in memory, oldest first."""
        return self._window.messages

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def loading_older(self) -> bool:
        """Whether older history is being fetched (the top line says so meanwhile)."""
        return self._window.filling_older

    @property
    def at_beginning(self) -> bool:
        """Whether the window starts with the conversation's first message: nothing
        older is in the cache, and the archive has none (or cannot be asked)."""
        return self._window.at_beginning and not self._window.has_older

    @property
    def found_message(self) -> StoredMessage | None:
        """The highlighted message the view was opened at, while it is in the window."""
        return self._window.found

    @property
    def selected_message(self) -> StoredMessage | None:
        position = self._selected_position()
        return None if position is None else self._window.messages[position]

    async def open(self, conversation: Conversation, last_read_seq: int, unread: int) -> None:
        """Show `conversation`: its newest page, or the page around the first unread.

        Returns once the page is laid out, or once a later `open()` overtook this one."""
        self._opening(conversation, last_read_seq)
        await self._wait_open(self._open_page(conversation, last_read_seq, unread))

    async def open_at(self, conversation: Conversation, seq: int, last_read_seq: int) -> None:
        """Show `conversation` from a little above the message `seq`, highlighted and
        selected."""
        self._opening(conversation, last_read_seq)
        self._selected_seq = seq
        await self._wait_open(self._open_page_at(conversation, seq))

    def history_filled(self) -> None:
        """The cache gained messages of the open conversation (a backfill): show them
        where they belong, keeping the viewport where it is unless it follows the newest."""
        self._window.older_may_exist()
        if self.tail:
            self._reload_newest()
        else:
            self._after_scroll()

    def _opening(self, conversation: Conversation, last_read_seq: int) -> None:
        self.conversation = conversation
        self._selected_seq = None
        self._pending = 0
        self._last_seen = last_read_seq
        # A page being read for the window that is going away must not land in the new one.
        self.workers.cancel_group(self, "paging")

    @staticmethod
    async def _wait_open(worker: Worker[None]) -> None:
        try:
            await worker.wait()
        except WorkerCancelled:
            return  # a later open() overtook this one
        except WorkerFailed as failed:
            raise failed.error from None

    @work(exclusive=True, group="open", exit_on_error=False)
    async def _open_page(self, conversation: Conversation, last_read_seq: int, unread: int) -> None:
        await self._window.open(conversation, last_read_seq, unread)
        self._divider_seq = next(
            (m.seq for m in self._window.messages if m.seq > last_read_seq and not m.outgoing),
            None,
        )
        self._relayout()
        self._scroll_to_start_position()
        self.post_message(self.PendingChanged(0))

    @work(exclusive=True, group="open", exit_on_error=False)
    async def _open_page_at(self, conversation: Conversation, seq: int) -> None:
        await self._window.open_at(conversation, seq)
        self._divider_seq = None
        self._relayout()
        self.tail = False

        def place() -> None:
            start = self.line_layout.start_of(seq)
            if start is not None:
                # A few lines of what came before, the found message near the top third.
                above = self.scrollable_content_region.height // 3
                self.scroll_to(y=max(0, start - above), animate=False, immediate=True)
            self._after_scroll()

        place()
        self.call_after_refresh(place)
        self.post_message(self.PendingChanged(0))

    def append(self, messages: Sequence[StoredMessage], *, reader_present: bool) -> None:
        """New messages of the open conversation, in seq order."""
        window = self._window
        fresh = window.newer_than_window(messages)
        if not fresh:
            return
        incoming = [m for m in fresh if not m.outgoing]
        # The tail flag, not the scroll position: a batch may land before the previous
        # one has scrolled the view down.
        was_tail = window.at_newest and self.tail
        if not window.at_newest:
            self._set_pending(self._pending + len(incoming))
            return
        divider_before = self._divider_seq
        if incoming and self._divider_seq is None and not (was_tail and reader_present):
            self._divider_seq = incoming[0].seq
        answered = any(m.outgoing for m in fresh)
        if answered:
            # The user answered: what came before counts as seen.
            self._divider_seq = None
        anchor = self._anchor()
        dropped = window.extend(fresh)
        moved_divider = divider_before is not None and divider_before != self._divider_seq
        layout = self.line_layout
        if moved_divider or layout.width != self._wrap_width():
            # The divider line among the laid-out messages went, or the width changed.
            self._relayout()
        else:
            layout.divider_seq = self._divider_seq
            layout.extend(fresh)
            layout.drop_oldest(dropped)
            self._update_virtual_size()
        self._window_moved()
        if was_tail or answered:
            self._scroll_to_end()
        else:
            self._restore_anchor(anchor)
            self._set_pending(self._pending + len(incoming))

    def update_statuses(self, changes: Sequence[StatusChange]) -> None:
        """Receipts or confirms changed own messages: redraw their ticks."""
        if not self._window.update_statuses(changes):
            return
        anchor = self._anchor()
        tail = self.tail and self._window.at_newest
        self._relayout()
        if tail:
            self._scroll_to_end()
        else:
            self._restore_anchor(anchor)
        self.refresh()

    def report_seen(self) -> None:
        """Tell the screen which messages are now on screen."""
        if self.conversation is None:
            return
        newest = self._visible_newest_seq()
        if newest > self._last_seen:
            self._last_seen = newest
            self.post_message(self.Seen(self.conversation, newest))

    def forget_seen(self) -> None:
        """The reader was away: report the visible messages again when they return."""
        self._last_seen = 0

    # --- layout ------------------------------------------------------------------------

    def _wrap_width(self) -> int:
        return max(self.scrollable_content_region.width, TIME_WIDTH + 10)

    def _relayout(self) -> None:
        """Lay out the whole window again."""
        self.line_layout.lay_out(self._window.messages, self._wrap_width(), self._divider_seq)
        self._update_virtual_size()

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self.line_layout.width, len(self.line_layout))
        self.refresh()

    def _visible_newest_seq(self) -> int:
        """The highest seq with a line inside the viewport (0 when nothing is shown)."""
        layout = self.line_layout
        if not len(layout) or not self.size.height:
            return 0
        top = self.scroll_offset.y
        bottom = min(len(layout), top + self.scrollable_content_region.height)
        newest = 0
        for y in range(top, bottom):
            if layout[y].kind == "message":
                newest = max(newest, layout.seq_at(y))
        return newest

    def _anchor(self) -> tuple[int, int] | None:
        """The message at the top of the viewport and how far into it the viewport is."""
        top = self.scroll_offset.y
        layout = self.line_layout
        if top >= len(layout):
            return None
        seq = layout.seq_at(top)
        start = layout.start_of(seq)
        return seq, top - (top if start is None else start)

    def _restore_anchor(self, anchor: tuple[int, int] | None) -> None:
        if anchor is None:
            return
        seq, offset = anchor
        start = self.line_layout.start_of(seq)
        if start is not None:
            self.scroll_to(y=start + offset, animate=False, immediate=True)

    def _window_moved(self) -> None:
        """The window lost messages at an end: a selection there moves to the new end."""
        if self._selected_seq is not None:
            self._selected_seq = self._window.nearest(self._selected_seq)

    def _selected_position(self) -> int | None:
        if self._selected_seq is None:
            return None
        return self._window.position_of(self._selected_seq)

    # --- scrolling ---------------------------------------------------------------------

    def _at_bottom(self) -> bool:
        return self.scroll_offset.y >= self.max_scroll_y

    def _scroll_to_end(self) -> None:
        self.tail = self._window.at_newest
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
            divider = self.line_layout.divider_line()
            height = self.scrollable_content_region.height
            if divider is not None and len(self.line_layout) - divider > height:
                self.scroll_to(y=max(0, divider - 1), animate=False, immediate=True)
                self.tail = False
            else:
                self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
                self.tail = self._window.at_newest
            self._after_scroll()

        place()
        self.call_after_refresh(place)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._after_scroll(moved_up=new_value < old_value)

    def _after_scroll(self, moved_up: bool = False) -> None:
        if not len(self.line_layout) or not self.scrollable_content_region.height:
            return  # not laid out yet: the position means nothing
        window = self._window
        if self._at_bottom() and window.at_newest:
            self.tail = True
        elif moved_up or not window.at_newest:
            self.tail = False
        if self.tail and self._pending:
            self._set_pending(0)
        top = self.scroll_offset.y
        if top < PREFETCH_LINES and window.wants_older(asked=moved_up):
            self._load_older()
        elif window.wants_newer and top > self.max_scroll_y - PREFETCH_LINES:
            self._load_newer()
        self.report_seen()

    def _tried_to_go_above(self) -> None:
        """The user asked for what is above the top (a wheel turn, Up on the first
        message), where no scroll happens: fetch older history if there may be some."""
        if self._window.wants_older(asked=True):
            self._load_older()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self.scroll_offset.y == 0:
            self._tried_to_go_above()

    def _set_pending(self, count: int) -> None:
        if count != self._pending:
            self._pending = count
            self.post_message(self.PendingChanged(count))

    # --- paging ------------------------------------------------------------------------

    @work(exclusive=True, group="paging")
    async def _load_older(self) -> None:
        try:
            # While the archive is asked, the top line says "loading older messages".
            merged = await self._window.page_older(fetching=self.refresh)
        except OlderHistoryFailed as failed:
            self.post_message(self.OlderFailed(failed.error))
            return
        if merged:
            self._show_merged_page()

    @work(exclusive=True, group="paging")
    async def _load_newer(self) -> None:
        if await self._window.load_newer():
            self._show_merged_page()
            self._after_scroll()

    def _show_merged_page(self) -> None:
        """Lay out a window that gained a page, keeping the viewport on its message."""
        # The layout still describes the window before the page: it finds the anchor.
        anchor = self._anchor()
        self._window_moved()
        self._relayout()
        self._restore_anchor(anchor)

    @work(exclusive=True, group="paging")
    async def _reload_newest(self) -> None:
        if self.conversation is None:
            return
        await self._window.reload_newest(self.conversation)
        self._relayout()
        self._scroll_to_end()
        self._set_pending(0)

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
        layout = self.line_layout
        index = scroll_y + y
        if index >= len(layout):
            return Strip.blank(width, base)
        if y == 0 and self.loading_older:
            return self._rule(LOADING_OLDER, width, "message-view--loading")
        line = layout[index]
        message = self._window.messages[line.message]
        if line.kind == "message":
            strips = self.renderer.strips(message, layout.width)
            strip = strips[min(line.row, len(strips) - 1)]
            style = base
            if line.message == self._selected_position() and self.has_focus:
                style = base + self.get_component_rich_style("message-view--selected")
            elif message.seq == self._window.found_seq:
                style = base + self.get_component_rich_style("message-view--found")
            strip = strip.apply_style(style)
        elif line.kind == "day":
            strip = self._rule(self.renderer.day_label(message), width, "message-view--day")
        else:
            strip = self._rule("new messages", width, "message-view--new")
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _rule(self, label: str, width: int, component: str) -> Strip:
        style = self.rich_style + self.get_component_rich_style(component)
        return self.renderer.rule(label, width, style)

    def on_resize(self, event: events.Resize) -> None:
        tail = self.tail and self._window.at_newest
        anchor = self._anchor()
        self._relayout()
        if tail:
            self._scroll_to_end()
        else:
            self._restore_anchor(anchor)

    def on_focus(self, event: events.Focus) -> None:
        if self._selected_seq is None and self._window.messages:
            self._select_visible_newest()
        self.refresh()

    def on_blur(self, event: events.Blur) -> None:
        self.refresh()

    # --- selection and actions ---------------------------------------------------------

    def _select_visible_newest(self) -> None:
        layout = self.line_layout
        top = self.scroll_offset.y
        bottom = min(len(layout), top + self.scrollable_content_region.height) - 1
        for y in range(bottom, top - 1, -1):
            if 0 <= y < len(layout) and layout[y].kind == "message":
                self._selected_seq = layout.seq_at(y)
                return
        messages = self._window.messages
        self._selected_seq = messages[-1].seq if messages else None

    def _show_selected(self) -> None:
        message = self.selected_message
        if message is None:
            return
        start = self.line_layout.start_of(message.seq)
        if start is None:
            return
        rows = self.renderer.row_count(message, self.line_layout.width)
        height = self.scrollable_content_region.height
        if start < self.scroll_offset.y:
            self.scroll_to(y=max(0, start - 1), animate=False, immediate=True)
        elif start + rows > self.scroll_offset.y + height:
            self.scroll_to(y=start + rows - height, animate=False, immediate=True)
        self.refresh()

    def _select_step(self, step: int) -> None:
        messages = self._window.messages
        if not messages:
            return
        position = self._selected_position()
        if position is None:
            self._select_visible_newest()
        elif 0 <= position + step < len(messages):
            self._selected_seq = messages[position + step].seq
        elif step < 0:
            self._tried_to_go_above()
        self._show_selected()

    def action_select_previous(self) -> None:
        self._select_step(-1)

    def action_select_next(self) -> None:
        self._select_step(1)

    def action_jump_to_newest(self) -> None:
        """End: back to the newest message (reloading the last page if it was paged out)."""
        self._selected_seq = None
        if self._window.at_newest:
            self._scroll_to_end()
            self._set_pending(0)
        else:
            self._reload_newest()

    def action_details(self) -> None:
        message = self.selected_message
        if message is not None:
            self.post_message(self.DetailsRequested(message))

    def action_leave(self) -> None:
        self._selected_seq = None
        self.refresh()
        self.post_message(self.Left())
