"""The lines of a window of messages: day separators, the unread divider, message rows.

Pure bookkeeping over the messages and two functions (a row count per width, a day
label), so that it is tested without a screen. A batch is laid out after the lines
already there, and the oldest messages are dropped from the front, without laying
out the rest again: a batch costs what it brings.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, NamedTuple

from chat_tui.core.records import StoredMessage

RowCount = Callable[[StoredMessage, int], int]
"""How many rows a message takes at a width."""
DayLabel = Callable[[StoredMessage], str]
"""The day a message belongs to; a separator stands where it changes."""


class Line(NamedTuple):
    """One line of the view."""

    kind: Literal["day", "new", "message"]
    message: int
    """Position in the window of the message the line shows, or stands before."""
    row: int = 0
    """Which of the message's rows, for a message line."""


class LineLayout:
    """The lines of the window, oldest first, at one width."""

    def __init__(self, row_count: RowCount, day_label: DayLabel) -> None:
        self._row_count = row_count
        self._day_label = day_label
        self.width = 0
        self.divider_seq: int | None = None
        """The message the unread divider stands before, if any."""
        # Lines number their message from the first one laid out since `lay_out`, so
        # dropping messages from the front renumbers nothing: `_first_index` is how
        # many have been dropped, `_first_line` how many lines went with them.
        self._lines: list[tuple[Literal["day", "new", "message"], int, int]] = []
        self._seqs: deque[int] = deque()
        """The seq of each message laid out and not dropped, in order."""
        self._start_of_seq: dict[int, int] = {}
        self._first_index = 0
        self._first_line = 0
        self._last_day: str | None = None

    def lay_out(
        self, messages: Iterable[StoredMessage], width: int, divider_seq: int | None
    ) -> None:
        """Lay the whole window out again."""
        self.width = width
        self.divider_seq = divider_seq
        self._lines = []
        self._seqs = deque()
        self._start_of_seq = {}
        self._first_index = 0
        self._first_line = 0
        self._last_day = None
        self.extend(messages)

    def extend(self, messages: Iterable[StoredMessage]) -> None:
        """Lay out messages newer than the window's after its lines.

        The divider may stand before one of them: set `divider_seq` first. When it
        moves off a message already laid out, lay the window out again instead."""
        lines = self._lines
        seqs = self._seqs
        start_of_seq = self._start_of_seq
        width = self.width
        index = self._first_index + len(seqs)
        for message in messages:
            day = self._day_label(message)
            if day != self._last_day:
                lines.append(("day", index, 0))
                self._last_day = day
            if message.seq == self.divider_seq:
                lines.append(("new", index, 0))
            start_of_seq[message.seq] = len(lines) + self._first_line
            seqs.append(message.seq)
            for row in range(self._row_count(message, width)):
                lines.append(("message", index, row))
            index += 1

    def drop_oldest(self, count: int) -> None:
        """Forget the lines of the `count` oldest messages."""
        count = min(count, len(self._seqs))
        for _ in range(count):
            del self._start_of_seq[self._seqs.popleft()]
        self._first_index += count
        lines = self._lines
        cut = 0
        while cut < len(lines) and lines[cut][1] < self._first_index:
            cut += 1
        del lines[:cut]
        self._first_line += cut
        if not self._seqs:
            self._last_day = None
        elif lines[0][0] != "day":
            # The new first message opens the window: it gets its day.
            lines.insert(0, ("day", self._first_index, 0))
            self._first_line -= 1

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, y: int) -> Line:
        kind, index, row = self._lines[y]
        return Line(kind, index - self._first_index, row)

    def __iter__(self) -> Iterator[Line]:
        first = self._first_index
        return (Line(kind, index - first, row) for kind, index, row in self._lines)

    def seq_at(self, y: int) -> int:
        """The seq of the message line `y` shows or stands before."""
        return self._seqs[self._lines[y][1] - self._first_index]

    def start_of(self, seq: int) -> int | None:
        """The first line of the message `seq` (None when it is not laid out)."""
        number = self._start_of_seq.get(seq)
        return None if number is None else number - self._first_line

    def divider_line(self) -> int | None:
        """Where the unread divider is (None when there is none)."""
        if self.divider_seq is None:
            return None
        start = self.start_of(self.divider_seq)
        return None if start is None else start - 1
