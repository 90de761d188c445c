"""How a message looks in the list: its rows as strips, and how many rows it takes.

The strips are the message wrapped by Rich (`Text.wrap`). The layout needs the row
count of every message in the window but the strips only of those on screen, and
wrapping a styled Text costs over 100 us a message (11-18 ms a page of 100, measured
with the benchmark's 120-character lines), so a message of plain printable text is
counted on its plain string, with the function `Text.wrap` itself applies to it
(`divide_line`): 1.6 ms a page. Own messages end with a tick whose place depends on
the last row, and other text has tabs or newlines to expand: those are wrapped.
"""

from __future__ import annotations

from datetime import tzinfo

from rich._wrap import divide_line  # what Text.wrap uses; Textual imports it too
from rich.cells import cell_len
from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.strip import Strip

from chat_tui.core.records import StoredMessage
from chat_tui.tui.formatting import TIME_STYLE, clock, day_label, sender_colour, status_tick
from chat_tui.tui.literal import literal_text

TIME_WIDTH = 6  # "HH:MM "
STRIP_CACHE = 256
"""Messages whose rendered lines are kept (more than any screen shows at once)."""
COUNT_CACHE = 4096
"""Messages whose row count and day label are kept: every one in the window, and more."""

_CacheKey = tuple[int, int, str, int, int, int]


class MessageRenderer:
    """Renders messages at a given width (the whole row, time column included)."""

    def __init__(self, console: Console, zone: tzinfo | None) -> None:
        self._console = console
        self._zone = zone
        # Each Strip carries its own caches (about 15 objects the garbage collector
        # walks), so a large cache makes every full collection slower: 2,048 entries
        # made 150 ms pauses during a backlog drain.
        self._strips: LRUCache[_CacheKey, list[Strip]] = LRUCache(STRIP_CACHE)
        # Row counts without the strips: the layout needs every count, the screen only
        # the strips of what it shows.
        self._rows: LRUCache[_CacheKey, int] = LRUCache(COUNT_CACHE)
        self._days: LRUCache[int, str] = LRUCache(COUNT_CACHE)

    def row_count(self, message: StoredMessage, width: int) -> int:
        """How many rows `strips(message, width)` has."""
        key = _key(message, width)
        rows = self._rows.get(key)
        if rows is None:
            strips = self._strips.get(key)
            if strips is not None:
                rows = len(strips)
            else:
                rows = self._count_rows(message, width - TIME_WIDTH)
            self._rows[key] = rows
        return rows

    def strips(self, message: StoredMessage, width: int) -> list[Strip]:
        """The message's rows: time and sender on the first, the text wrapped under it."""
        key = _key(message, width)
        cached = self._strips.get(key)
        if cached is not None:
            return cached
        console = self._console
        strips: list[Strip] = []
        for row, line in enumerate(self._wrap(message, width - TIME_WIDTH)):
            prefix = (
                Text(clock(message.sent_at, self._zone) + " ", TIME_STYLE, end="")
                if row == 0
                else Text(" " * TIME_WIDTH, end="")
            )
            full = Text.assemble(prefix, line, end="")
            strips.append(Strip(list(full.render(console)), full.cell_len))
        self._strips[key] = strips
        return strips

    def day_label(self, message: StoredMessage) -> str:
        """The day the message was sent on, in the view's time zone."""
        day = self._days.get(message.seq)
        if day is None:
            day = day_label(message.sent_at, self._zone)
            self._days[message.seq] = day
        return day

    def rule(self, label: str, width: int, style: Style) -> Strip:
        """A separator across `width`: `─── label ───`."""
        text = f" {label} "
        fill = max(0, width - len(text))
        left = fill // 2
        rule = "─" * left + text + "─" * (fill - left)
        return Strip([*Text(rule, style, end="").render(self._console)], len(rule))

    def _count_rows(self, message: StoredMessage, text_width: int) -> int:
        content = message.content
        # isprintable(): no newline, tab or control character, so the body is the plain
        # string below, one paragraph that Text.wrap breaks where divide_line says.
        if content.isprintable():
            length = cell_len(message.sender_id) + 1 + cell_len(content)
            if message.outgoing:
                length += 2 + _tick(message).cell_len
            if length <= text_width:
                return 1
            if not message.outgoing:
                plain = f"{message.sender_id} {content}"
                return len(divide_line(plain, text_width, fold=True)) + 1
        return len(self._wrap(message, text_width))

    def _wrap(self, message: StoredMessage, text_width: int) -> list[Text]:
        """The message's text column, wrapped into rows."""
        body = Text(end="")
        body.append(message.sender_id, Style(color=sender_colour(message.sender_id), bold=True))
        body.append(" ")
        body.append_text(literal_text(message.content))
        wrapped = list(body.wrap(self._console, text_width, overflow="fold"))
        if message.outgoing:
            # The tick is never split: it ends the last line, or gets a line of its own.
            tick = _tick(message)
            last = wrapped[-1] if wrapped else Text(end="")
            if last.cell_len + 2 + tick.cell_len <= text_width:
                wrapped[-1:] = [Text.assemble(last, "  ", tick, end="")]
            else:
                wrapped.append(tick)
        return wrapped


def _tick(message: StoredMessage) -> Text:
    return status_tick(message, message.conversation.kind == "group")


def _key(message: StoredMessage, width: int) -> _CacheKey:
    """What the rows of a message depend on besides the message itself."""
    return (
        message.seq,
        width,
        message.status,
        message.delivered_count,
        message.read_count,
        message.recipient_count,
    )
