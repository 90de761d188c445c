"""The message list's window over a conversation, without a screen or a cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from chat_tui.core.records import StatusChange, StoredMessage
from chat_tui.protocol.conversations import Conversation
from chat_tui.tui.widgets.conversation.message_window import (
    CONTEXT_BEFORE_UNREAD,
    MAX_WINDOW,
    PAGE,
    MessageWindow,
    OlderHistoryFailed,
)

BOB = Conversation.dm("bob")
CAROL = Conversation.dm("carol")


def _message(seq: int, conversation: Conversation = BOB) -> StoredMessage:
    return StoredMessage(
        seq=seq,
        message_id=f"m{seq}",
        conversation=conversation,
        sender_id=conversation.name,
        content=f"message {seq}",
        sent_at=datetime(2026, 3, 10, tzinfo=UTC),
        outgoing=False,
        status="received",
    )


class History:
    """`Store.history` over a list; `hold` keeps the next read waiting until released."""

    def __init__(self, messages: list[StoredMessage]) -> None:
        self.messages = messages
        self.hold: asyncio.Event | None = None
        self.reading = asyncio.Event()

    async def history(
        self,
        conversation: Conversation,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[StoredMessage]:
        self.reading.set()
        if self.hold is not None:
            await self.hold.wait()
        mine = [m for m in self.messages if m.conversation == conversation]
        if after_seq is not None:
            return [m for m in mine if m.seq > after_seq][:limit]
        if before_seq is not None:
            mine = [m for m in mine if m.seq < before_seq]
        return mine[-limit:]


class Archive:
    """An `OlderHistory` that moves the next older messages into `History`'s list, a
    page at a time, or fails with `error`; `window` is seen while it fetches."""

    def __init__(self, history: History, older: list[StoredMessage]) -> None:
        self.history = history
        self.older = older
        self.error: Exception | None = None
        self.asked = 0
        self.window: MessageWindow | None = None
        self.filling_seen: list[bool] = []

    async def load_older(self, conversation: Conversation) -> int:
        self.asked += 1
        if self.window is not None:
            self.filling_seen.append(self.window.filling_older)
        if self.error is not None:
            raise self.error
        page, self.older = self.older[-PAGE:], self.older[:-PAGE]
        self.history.messages[:0] = page
        return len(page)


def _seqs(window: MessageWindow) -> list[int]:
    return [m.seq for m in window.messages]


async def test_opens_on_the_newest_page() -> None:
    window = MessageWindow(History([_message(seq) for seq in range(1, 251)]))
    await window.open(BOB, last_read_seq=250, unread=0)
    assert _seqs(window) == list(range(151, 251))
    assert window.has_older and window.at_newest and window.conversation == BOB


async def test_opens_at_the_first_unread_with_some_context_above_it() -> None:
    window = MessageWindow(History([_message(seq) for seq in range(1, 501)]))
    await window.open(BOB, last_read_seq=200, unread=300)
    first = 201 - CONTEXT_BEFORE_UNREAD
    assert _seqs(window) == list(range(first, 201 + PAGE))
    assert window.has_older and not window.at_newest


async def test_paging_older_trims_the_newest_end_and_paging_newer_the_oldest() -> None:
    window = MessageWindow(History([_message(seq) for seq in range(1, 1001)]))
    await window.open(BOB, last_read_seq=1000, unread=0)
    for _ in range(3):
        assert await window.load_older()
    assert len(window.messages) == MAX_WINDOW
    assert _seqs(window) == list(range(601, 901))
    assert window.has_older and not window.at_newest
    assert await window.load_newer()
    assert _seqs(window) == list(range(701, 1001))
    assert not window.at_newest  # a full page: there may be more
    assert await window.load_newer()
    assert _seqs(window) == list(range(701, 1001)) and window.at_newest


async def test_paging_to_the_oldest_message_says_there_is_nothing_older() -> None:
    window = MessageWindow(History([_message(seq) for seq in range(1, 151)]))
    await window.open(BOB, last_read_seq=150, unread=0)
    assert await window.load_older()
    assert _seqs(window) == list(range(1, 151)) and not window.has_older
    assert not await window.load_older()


async def test_a_page_read_while_the_window_moved_is_not_merged() -> None:
    history = History([_message(seq) for seq in range(1, 501)])
    window = MessageWindow(history)
    await window.open(BOB, last_read_seq=500, unread=0)
    assert await window.load_older() and await window.load_older()
    assert _seqs(window) == list(range(201, 501))
    hold = asyncio.Event()
    history.hold = hold
    history.reading.clear()
    loading = asyncio.create_task(window.load_older())
    await history.reading.wait()
    assert window.loading
    # A batch arrives meanwhile and pushes the oldest out of the full window: the
    # page read for before 201 no longer joins it.
    window.extend([_message(seq) for seq in range(501, 551)])
    hold.set()
    assert not await loading
    assert _seqs(window) == list(range(251, 551))
    assert not window.loading


async def test_a_page_of_another_conversation_is_not_merged_after_a_switch() -> None:
    history = History([_message(seq) for seq in range(1, 201)] + [_message(500, CAROL)])
    window = MessageWindow(history)
    await window.open(BOB, last_read_seq=200, unread=0)
    hold = asyncio.Event()
    history.hold = hold
    loading = asyncio.create_task(window.load_older())
    await history.reading.wait()
    history.hold = None
    await window.open(CAROL, last_read_seq=500, unread=0)
    hold.set()
    assert not await loading
    assert _seqs(window) == [500] and window.conversation == CAROL


async def test_messages_newer_than_the_window_join_it_and_the_oldest_leave() -> None:
    window = MessageWindow(History([_message(seq) for seq in range(1, 281)]))
    await window.open(BOB, last_read_seq=280, unread=0)
    assert await window.load_older() and await window.load_older()
    assert len(window.messages) == 280 and not window.has_older
    batch = [_message(279), _message(281), _message(282, CAROL), _message(283)]
    fresh = window.newer_than_window(batch)
    assert [m.seq for m in fresh] == [281, 283]
    assert window.extend([_message(seq) for seq in range(281, 311)]) == 10
    assert _seqs(window) == list(range(11, 311)) and window.has_older


async def test_status_changes_replace_the_messages_they_concern() -> None:
    window = MessageWindow(History([_message(seq) for seq in range(1, 4)]))
    await window.open(BOB, last_read_seq=3, unread=0)
    change = StatusChange("m2", BOB, "failed", 0, 0, 1, "unknown user")
    assert window.update_statuses([change])
    assert window.messages[1].status == "failed" and window.messages[1].error == "unknown user"
    assert window.messages[1].recipient_count == 1 and window.messages[1].content == "message 2"
    assert [m.status for m in window.messages] == ["received", "failed", "received"]
    assert not window.update_statuses([StatusChange("m9", BOB, "read", 1, 1, 1)])


async def test_positions_and_the_nearest_end_of_the_window() -> None:
    window = MessageWindow(History([_message(seq) for seq in (3, 5, 8)]))
    assert window.nearest(4) is None
    await window.open(BOB, last_read_seq=8, unread=0)
    assert window.position_of(5) == 1 and window.position_of(4) is None
    assert window.nearest(1) == 3 and window.nearest(5) == 5 and window.nearest(99) == 8


async def test_paging_older_reads_the_cache_first_then_fetches_past_its_oldest() -> None:
    history = History([_message(seq) for seq in range(151, 301)])
    archive = Archive(history, [_message(seq) for seq in range(1, 151)])
    window = MessageWindow(history, archive)
    archive.window = window
    await window.open(BOB, last_read_seq=300, unread=0)
    assert window.wants_older(asked=False)  # the cache has more: no need to ask
    calls: list[bool] = []
    assert await window.page_older(lambda: calls.append(window.filling_older))
    assert _seqs(window) == list(range(151, 301)) and archive.asked == 0 and calls == []
    # The cache's oldest is in the window: only a user who asks gets the archive.
    assert not window.wants_older(asked=False) and window.wants_older(asked=True)
    assert await window.page_older(lambda: calls.append(window.filling_older))
    assert _seqs(window) == list(range(51, 301)) and archive.asked == 1
    assert calls == [False, False] and archive.filling_seen == [True]
    assert not window.filling_older and not window.loading
    assert await window.page_older() and _seqs(window) == list(range(1, 301))
    # The archive has nothing older: the beginning, and nobody asks again.
    assert not await window.page_older()
    assert window.at_beginning and archive.asked == 3
    assert not window.wants_older(asked=True)


async def test_a_failed_fetch_says_why_and_is_not_asked_again_for_that_conversation() -> None:
    history = History([_message(seq) for seq in range(101, 151)])
    archive = Archive(history, [_message(seq) for seq in range(1, 101)])
    archive.error = RuntimeError("the archive did not answer")
    window = MessageWindow(history, archive)
    await window.open(BOB, last_read_seq=150, unread=0)
    calls: list[bool] = []
    try:
        await window.page_older(lambda: calls.append(True))
    except OlderHistoryFailed as failed:
        assert failed.error is archive.error
    else:
        raise AssertionError("the failed fetch was not reported")
    assert calls == [True, True]  # started and ended, so the screen stops saying it
    assert not window.wants_older(asked=True) and not window.loading
    archive.error = None
    await window.open(BOB, last_read_seq=150, unread=0)
    assert not window.wants_older(asked=True)  # the same conversation: still at its beginning
    await window.open(CAROL, last_read_seq=0, unread=0)
    await window.open(BOB, last_read_seq=150, unread=0)
    assert window.wants_older(asked=True)


async def test_newer_pages_are_wanted_until_the_window_ends_with_the_newest() -> None:
    window = MessageWindow(History([_message(seq) for seq in range(1, 501)]))
    await window.open(BOB, last_read_seq=100, unread=400)
    assert window.wants_newer
    while await window.load_newer():
        if window.at_newest:
            break
    assert window.at_newest and not window.wants_newer


async def test_the_message_opened_at_is_found_until_the_next_open() -> None:
    window = MessageWindow(History([_message(seq) for seq in range(1, 501)]))
    await window.open_at(BOB, 120)
    assert window.found is not None and window.found.seq == 120 and window.found_seq == 120
    assert _seqs(window)[0] == 120 - PAGE // 2
    await window.reload_newest(BOB)  # End: the newest page, and 120 is out of it
    assert window.found is None and window.found_seq == 120
    await window.open(BOB, last_read_seq=500, unread=0)
    assert window.found_seq is None
