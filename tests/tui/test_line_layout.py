"""The message list's line layout, without a screen: days, the divider, rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chat_tui.core.records import StoredMessage
from chat_tui.protocol.conversations import Conversation
from chat_tui.tui.widgets.conversation.line_layout import Line, LineLayout

BOB = Conversation.dm("bob")
MIDNIGHT = datetime(2026, 3, 10, tzinfo=UTC)


def _message(seq: int, *, hours: float = 0.0, content: str = "hi") -> StoredMessage:
    return StoredMessage(
        seq=seq,
        message_id=f"m{seq}",
        conversation=BOB,
        sender_id="bob",
        content=content,
        sent_at=MIDNIGHT + timedelta(hours=hours),
        outgoing=False,
        status="received",
    )


def _rows(message: StoredMessage, width: int) -> int:
    """One row per `width` characters of content: enough to tell widths apart."""
    return max(1, -(-len(message.content) // width))


def _day(message: StoredMessage) -> str:
    return message.sent_at.date().isoformat()


def _layout(
    messages: list[StoredMessage], width: int = 10, divider: int | None = None
) -> LineLayout:
    layout = LineLayout(_rows, _day)
    layout.lay_out(messages, width, divider)
    return layout


def test_a_day_opens_the_window_and_each_change_of_day_gets_a_separator() -> None:
    messages = [_message(1, hours=-1), _message(2, hours=1), _message(3, hours=2)]
    assert list(_layout(messages)) == [
        Line("day", 0),
        Line("message", 0),
        Line("day", 1),
        Line("message", 1),
        Line("message", 2),
    ]


def test_the_unread_divider_stands_after_the_day_and_before_its_message() -> None:
    messages = [_message(1), _message(2, hours=1), _message(3, hours=30)]
    layout = _layout(messages, divider=3)
    assert list(layout) == [
        Line("day", 0),
        Line("message", 0),
        Line("message", 1),
        Line("day", 2),
        Line("new", 2),
        Line("message", 2),
    ]
    assert layout.divider_line() == 4
    assert _layout(messages).divider_line() is None


def test_a_long_message_gets_a_line_per_row_at_the_layouts_width() -> None:
    messages = [_message(1, content="x" * 25), _message(2)]
    assert list(_layout(messages, width=10)) == [
        Line("day", 0),
        Line("message", 0, 0),
        Line("message", 0, 1),
        Line("message", 0, 2),
        Line("message", 1, 0),
    ]
    assert len(_layout(messages, width=30)) == 3


def test_lines_know_their_message_and_where_it_starts() -> None:
    messages = [_message(5, content="x" * 15), _message(9, hours=30)]
    layout = _layout(messages, divider=9)
    assert [layout.seq_at(y) for y in range(len(layout))] == [5, 5, 5, 9, 9, 9]
    assert layout.start_of(5) == 1
    assert layout.start_of(9) == 5
    assert layout.start_of(7) is None


def test_laid_out_batch_by_batch_with_the_oldest_dropped_equals_laid_out_at_once() -> None:
    # Eight hours apart with some long ones: days change inside batches and at the
    # window's front, where the oldest are dropped.
    messages = [_message(seq, hours=8 * seq, content="y" * (seq % 4 * 7)) for seq in range(1, 61)]
    window: list[StoredMessage] = []
    layout = _layout([], divider=23)
    for start in range(0, 60, 7):
        batch = messages[start : start + 7]
        window += batch
        dropped = max(0, len(window) - 20)
        del window[:dropped]
        layout.extend(batch)
        layout.drop_oldest(dropped)
        at_once = _layout(window, divider=23)
        assert list(layout) == list(at_once), start
        assert [layout.seq_at(y) for y in range(len(layout))] == [
            at_once.seq_at(y) for y in range(len(at_once))
        ]
        assert [layout.start_of(m.seq) for m in window] == [at_once.start_of(m.seq) for m in window]
        assert layout.divider_line() == at_once.divider_line()
    assert layout.start_of(messages[0].seq) is None


def test_dropping_every_message_leaves_an_empty_layout_that_starts_afresh() -> None:
    layout = _layout([_message(1), _message(2)])
    layout.drop_oldest(5)
    assert list(layout) == []
    layout.extend([_message(3)])
    assert list(layout) == [Line("day", 0), Line("message", 0)]
