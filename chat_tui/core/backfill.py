"""Filling the cache from the archive: a joined group's recent history, a new device's
conversations, and older pages when the user scrolls up past the oldest cached message.

What comes in is stored as backfilled (store/backfill.py: in its place, read, never
receipted, never shown as news) and the face hears `history_filled`. One conversation
is filled by one task at a time, so that two pages cannot interleave their cursors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from chat_tui.core.archive_client import ArchiveClient
from chat_tui.core.errors import ArchiveUnavailableError, ChatError
from chat_tui.core.records import StoredMessage
from chat_tui.protocol.archive import MAX_HISTORY_LIMIT, HistoryPage
from chat_tui.protocol.conversations import Conversation
from chat_tui.store import Store
from chat_tui.store.backfill import ArchivePosition

log = logging.getLogger(__name__)

RECENT = 200
"""How many of a conversation's newest messages a join or a new device fetches."""
MAX_PAGES_TO_NEW = 50
"""How many pages `older` reads past what is cached before it gives up finding new ones."""
MAX_CATCH_UP = 10
"""How many pages `recent` reads back to reach what is cached."""
FILL_CONCURRENCY = 4
"""Conversations a new device fills at the same time."""


class Backfill:
    def __init__(
        self,
        store: Store,
        archive: ArchiveClient,
        filled: Callable[[Conversation, int], None],
    ) -> None:
        self._store = store
        self._archive = archive
        self._filled = filled
        self._locks: dict[Conversation, asyncio.Lock] = {}
        self._ahead: dict[Conversation, tuple[str, int, asyncio.Task[HistoryPage]]] = {}
        """The next older page of a conversation, asked for while the last was stored:
        (its cursor, its limit, the request). Scrolling up goes on where it stopped, so
        its wait overlaps the storing, and a long fill is bound by the slower of the two."""

    def _lock(self, conversation: Conversation) -> asyncio.Lock:
        return self._locks.setdefault(conversation, asyncio.Lock())

    async def recent(self, conversation: Conversation, limit: int = RECENT) -> int:
        """Fetch the newest `limit` messages of `conversation`; how many were new. If it
        has cached messages (the inbox that was gone), pages on back until one overlaps
        them (at most MAX_CATCH_UP pages), and stores what was missed in one go, in the
        archive's order, after them. The last page's cursor becomes where `older` goes
        on, unless it has been further back."""
        async with self._lock(conversation):
            had_cached = await self._store.message_count(conversation) > 0
            pages = [await self._archive.history(conversation, None, "older", limit)]
            while had_cached and len(pages) < MAX_CATCH_UP and pages[-1].next_cursor:
                ids = [str(m.message_id) for m in pages[-1].messages]
                if await self._store.messages_by_id(ids):
                    break  # reached what is cached
                pages.append(
                    await self._archive.history(
                        conversation, pages[-1].next_cursor, "older", MAX_HISTORY_LIMIT
                    )
                )
            known = await self._store.archive_position(conversation)
            position = None
            if known.older_cursor is None and not known.at_beginning:
                position = (conversation, self._after(pages[-1]))
            missed = [message for page in pages for message in page.messages]
            stored = await self._store.store_archived(missed, position=position)
        return self._report(conversation, stored.get(conversation, 0))

    async def older(self, conversation: Conversation, limit: int = 100) -> int:
        """Up to `limit` messages older than the oldest cached one; 0 at the beginning.
        Pages that hold only cached messages are read through (at most
        MAX_PAGES_TO_NEW of them)."""
        async with self._lock(conversation):
            position = await self._store.archive_position(conversation)
            new = 0
            for _ in range(MAX_PAGES_TO_NEW):
                if position.at_beginning:
                    break
                size = min(limit, MAX_HISTORY_LIMIT)
                page = await self._page(conversation, position.older_cursor, size)
                position = self._after(page)
                if position.older_cursor is not None:
                    self._ask_ahead(conversation, position.older_cursor, size)
                stored = await self._store.store_archived(
                    page.messages, position=(conversation, position)
                )
                new = stored.get(conversation, 0)
                if new:
                    break
        return self._report(conversation, new)

    async def _page(self, conversation: Conversation, cursor: str | None, size: int) -> HistoryPage:
        ahead = self._ahead.pop(conversation, None)
        if ahead is not None:
            ahead_cursor, ahead_size, task = ahead
            if ahead_cursor == cursor and ahead_size == size:
                try:
                    return await task
                except ChatError:
                    pass  # ask again below: its error, if it stays, is the caller's
            else:
                task.cancel()
        return await self._archive.history(conversation, cursor, "older", size)

    def _ask_ahead(self, conversation: Conversation, cursor: str, size: int) -> None:
        task = asyncio.create_task(self._archive.history(conversation, cursor, "older", size))
        # Retrieved here if nobody awaits it, so that its failure is not logged as lost.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._ahead[conversation] = (cursor, size, task)

    def close(self) -> None:
        """Cancel the pages asked for ahead."""
        for _cursor, _size, task in self._ahead.values():
            task.cancel()
        self._ahead.clear()

    async def until(self, conversation: Conversation, message_id: str) -> StoredMessage:
        """Page older history in until `message_id` is cached, and return it."""
        for _ in range(MAX_PAGES_TO_NEW):
            found = await self._store.get_message(message_id)
            if found is not None:
                return found
            if not await self.older(conversation, MAX_HISTORY_LIMIT):
                break
        found = await self._store.get_message(message_id)
        if found is None:
            raise ChatError(f"the message is not in the history of {conversation} any more")
        return found

    async def fill(self, conversations: Iterable[Conversation]) -> int:
        """The newest messages of each conversation, a few at a time; how many were new.
        A conversation the archive cannot give is left as it is."""
        gate = asyncio.Semaphore(FILL_CONCURRENCY)
        gave_up: list[ArchiveUnavailableError] = []

        async def one(conversation: Conversation) -> int:
            async with gate:
                if gave_up:
                    return 0  # no archive answers: the others would wait it out too
                try:
                    return await self.recent(conversation)
                except ArchiveUnavailableError as exc:
                    gave_up.append(exc)
                    return 0
                except ChatError as exc:
                    log.info("no history for %s from the archive: %s", conversation, exc)
                    return 0

        return sum(await asyncio.gather(*(one(c) for c in conversations)))

    @staticmethod
    def _after(page: HistoryPage) -> ArchivePosition:
        return ArchivePosition(page.next_cursor, page.next_cursor is None)

    def _report(self, conversation: Conversation, count: int) -> int:
        if count:
            self._filled(conversation, count)
        return count
