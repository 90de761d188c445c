"""The window of one conversation kept in memory, paged in from a `HistorySource`.

At most `MAX_WINDOW` messages, contiguous and in seq order: a page merges only onto
the edge it was read for, and the far edge is trimmed. Past the oldest cached message
an `OlderHistory` (the archive, through the core) may fill the cache with older ones,
which then page in like the rest (`page_older`). The window also says when a page is
wanted, and remembers the message it was opened at (a search result, highlighted).
Plain Python, no screen.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

from chat_tui.core.cache_view import HistorySource
from chat_tui.core.records import StatusChange, StoredMessage
from chat_tui.protocol.conversations import Conversation

PAGE = 100
"""Messages read from the cache at a time."""
MAX_WINDOW = 3 * PAGE
"""Messages kept in memory: the visible ones and about a page either side."""
CONTEXT_BEFORE_UNREAD = 10
"""Read messages shown above the first unread one, when the window opens there."""
CONTEXT_BEFORE_FOUND = PAGE // 2
"""Messages read above a message the window opens at (a search result)."""


class OlderHistory(Protocol):
    """Where messages older than the cache's oldest come from."""

    async def load_older(self, conversation: Conversation) -> int:
        """Put older messages of `conversation` into the cache; how many (0: there are
        none, the cache holds the conversation's beginning)."""
        ...


class OlderHistoryFailed(Exception):
    """Older history could not be fetched into the cache: `error` says why."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class MessageWindow:
    """A contiguous run of one conversation's messages, oldest first."""

    def __init__(self, source: HistorySource, older: OlderHistory | None = None) -> None:
        self._source = source
        self._older = older
        self.conversation: Conversation | None = None
        self.messages: list[StoredMessage] = []
        self.has_older = False
        """Whether older messages than the window's exist."""
        self.at_newest = True
        """Whether the window ends with the conversation's newest message."""
        self.loading = False
        """Whether an older or newer page is being read (or fetched into the cache)."""
        self.filling_older = False
        """Whether older history is being fetched into the cache (`loading` too)."""
        self.at_beginning = False
        """Whether nothing older than the cache's oldest exists, or none can be had."""
        self.found_seq: int | None = None
        """The message the window was opened at (a search result), until the next open."""

    @property
    def found(self) -> StoredMessage | None:
        """The message the window was opened at, while it is in the window."""
        position = None if self.found_seq is None else self.position_of(self.found_seq)
        return None if position is None else self.messages[position]

    async def open(self, conversation: Conversation, last_read_seq: int, unread: int) -> None:
        """The newest page of `conversation`, or the page around its first unread."""
        self.found_seq = None
        if unread > PAGE - CONTEXT_BEFORE_UNREAD:
            before = await self._source.history(
                conversation, before_seq=last_read_seq + 1, limit=CONTEXT_BEFORE_UNREAD
            )
            after = await self._source.history(conversation, after_seq=last_read_seq, limit=PAGE)
            self._replace(conversation, before + after)
            self.has_older = len(before) == CONTEXT_BEFORE_UNREAD
            self.at_newest = len(after) < PAGE
        else:
            await self.reload_newest(conversation)

    async def open_at(self, conversation: Conversation, seq: int) -> None:
        """The page that starts a little above the message `seq`, which is `found`."""
        self.found_seq = seq
        before = await self._source.history(
            conversation, before_seq=seq, limit=CONTEXT_BEFORE_FOUND
        )
        after = await self._source.history(conversation, after_seq=seq - 1, limit=PAGE)
        self._replace(conversation, before + after)
        self.has_older = len(before) == CONTEXT_BEFORE_FOUND
        self.at_newest = len(after) < PAGE

    async def reload_newest(self, conversation: Conversation) -> None:
        """The newest page of `conversation`, in place of the window."""
        messages = await self._source.history(conversation, limit=PAGE)
        self._replace(conversation, messages)
        self.has_older = len(messages) == PAGE
        self.at_newest = True

    async def load_older(self) -> bool:
        """Merge the page before the window, trimming its newest end; False when
        nothing was merged (no older messages, or the window moved meanwhile)."""
        older = await self._page_beyond(0)
        if older is None:
            return False
        self.has_older = len(older) == PAGE
        if not older:
            return False
        self.messages[:0] = older
        overflow = len(self.messages) - MAX_WINDOW
        if overflow > 0:
            del self.messages[-overflow:]
            self.at_newest = False
        return True

    def wants_older(self, *, asked: bool) -> bool:
        """Whether to page older now that the viewport is near the top: from the cache
        whenever it has more, from the archive only when the user `asked` (scrolled up,
        or tried to go above the first message)."""
        if self.loading:
            return False
        return self.has_older or (asked and self.may_fill_older)

    @property
    def wants_newer(self) -> bool:
        """Whether a page after the window's newest exists and none is being read."""
        return not self.loading and not self.at_newest

    async def page_older(self, fetching: Callable[[], object] = lambda: None) -> bool:
        """Merge the cache's page before the window; past the cache's oldest, have the
        `OlderHistory` fill the cache first. `fetching` is called as that fetch starts
        and as it ends (a screen says so meanwhile). Whether a page merged; a failed
        fetch raises `OlderHistoryFailed`."""
        if self.has_older and await self.load_older():
            return True
        # The cache has nothing older (it may have found that out just now).
        if not self.may_fill_older:
            return False
        fetching()
        try:
            filled = await self.fill_older()
        except Exception as error:
            raise OlderHistoryFailed(error) from error
        finally:
            fetching()
        return filled and await self.load_older()

    @property
    def may_fill_older(self) -> bool:
        """Whether the window shows the cache's oldest message and older ones may exist."""
        return (
            self._older is not None
            and bool(self.messages)
            and not self.has_older
            and not self.at_beginning
            and not self.loading
        )

    async def fill_older(self) -> bool:
        """Ask for messages older than the cache's oldest; whether some came (then
        `load_older` pages them in). Errors pass through, after which nothing more is
        asked for this conversation until it is opened again."""
        conversation = self.conversation
        if self._older is None or conversation is None:
            return False
        self.loading = self.filling_older = True
        try:
            count = await self._older.load_older(conversation)
        except Exception:
            self.at_beginning = conversation == self.conversation
            raise
        finally:
            self.loading = self.filling_older = False
        if conversation != self.conversation:
            return False  # another conversation opened meanwhile: this one's turn is over
        if count == 0:
            self.at_beginning = True
            return False
        self.has_older = True
        return True

    def older_may_exist(self) -> None:
        """The cache gained messages of this conversation from elsewhere (a backfill):
        page again in both directions instead of trusting the edges seen so far."""
        if self.messages:
            self.has_older = True
            self.at_newest = False
        self.at_beginning = False

    async def load_newer(self) -> bool:
        """Merge the page after the window, trimming its oldest end; False when the
        window moved meanwhile."""
        newer = await self._page_beyond(-1)
        if newer is None:
            return False
        if len(newer) < PAGE:
            self.at_newest = True
        self.messages.extend(newer)
        self._trim_oldest()
        return True

    def newer_than_window(self, messages: Sequence[StoredMessage]) -> list[StoredMessage]:
        """Those of `messages` that belong after the window's newest."""
        newest = self.messages[-1].seq if self.messages else 0
        conversation = self.conversation
        return [m for m in messages if m.conversation == conversation and m.seq > newest]

    def extend(self, messages: Sequence[StoredMessage]) -> int:
        """Add messages newer than the window (it must be `at_newest`), and return how
        many of the oldest were dropped to keep it at `MAX_WINDOW`."""
        self.messages.extend(messages)
        return self._trim_oldest()

    def update_statuses(self, changes: Sequence[StatusChange]) -> bool:
        """Take the new status of own messages; whether any is in the window."""
        by_id = {change.message_id: change for change in changes}
        touched = False
        for i, message in enumerate(self.messages):
            change = by_id.get(message.message_id)
            if change is None:
                continue
            self.messages[i] = dataclasses.replace(
                message,
                status=change.status,
                delivered_count=change.delivered_count,
                read_count=change.read_count,
                recipient_count=change.recipient_count,
                error=change.error,
            )
            touched = True
        return touched

    def position_of(self, seq: int) -> int | None:
        """Where the message `seq` is in the window."""
        position = bisect.bisect_left(self.messages, seq, key=_seq)
        if position < len(self.messages) and self.messages[position].seq == seq:
            return position
        return None

    def nearest(self, seq: int) -> int | None:
        """`seq` itself if it is in the window, else the seq of the window's end nearest
        to it (None for an empty window)."""
        if not self.messages:
            return None
        return min(max(seq, self.messages[0].seq), self.messages[-1].seq)

    def _replace(self, conversation: Conversation, messages: list[StoredMessage]) -> None:
        if conversation != self.conversation:
            self.at_beginning = False
        self.conversation = conversation
        self.messages = messages

    async def _page_beyond(self, end: int) -> list[StoredMessage] | None:
        """The page before the window's first message (`end` 0) or after its last (-1);
        None when there is no window, or when it moved while the page was read."""
        conversation, seq = self._edge(end)
        if conversation is None:
            return None
        self.loading = True
        try:
            if end == 0:
                page = await self._source.history(conversation, before_seq=seq, limit=PAGE)
            else:
                page = await self._source.history(conversation, after_seq=seq, limit=PAGE)
        finally:
            self.loading = False
        return page if self._edge(end) == (conversation, seq) else None

    def _edge(self, end: int) -> tuple[Conversation | None, int]:
        """The conversation and the seq of one end of the window: what a page is read for."""
        if self.conversation is None or not self.messages:
            return None, 0
        return self.conversation, self.messages[end].seq

    def _trim_oldest(self) -> int:
        overflow = len(self.messages) - MAX_WINDOW
        if overflow <= 0:
            return 0
        del self.messages[:overflow]
        self.has_older = True
        return overflow


def _seq(message: StoredMessage) -> int:
    return message.seq
