"""The client's history: what the archive adds to the cache, and search.

`ChatClient.history` holds the archive's requester and client, the backfill and the
search, and is what the faces call for them: search, older pages when scrolling up, a
search hit's message, a joined group's recent history and a new device's conversations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from chat_tui.config import Settings
from chat_tui.core.archive_client import ArchiveClient
from chat_tui.core.backfill import Backfill
from chat_tui.core.background import BackgroundTasks
from chat_tui.core.errors import ArchiveRefusedError, ArchiveUnavailableError, ChatError
from chat_tui.core.groups import parse_group_id
from chat_tui.core.records import StoredMessage
from chat_tui.core.search import Search, SearchHit, SearchOutcome
from chat_tui.core.sink import Sink
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.names import Names
from chat_tui.store import Store
from chat_tui.transport.archive_requests import ArchiveRequester
from chat_tui.transport.connection import Transport
from chat_tui.transport.link import BrokerLink

log = logging.getLogger(__name__)

FILL_DMS_WITH_AT_MOST = 200
"""Before DM_PEERS_REQUEST (an archive that refuses it as malformed), a new device asks
for the DM with each user the directory knows, up to this many."""
JOIN_HISTORY_TRIES = 4
"""A join's history request can reach the archive before it has folded the join from
the directory, which refuses it; it is asked again this many times, a second apart."""


class History:
    """History and search for one user, from the cache and the archive."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        transport: BrokerLink,
        names: Names,
        sink: Sink,
        tasks: BackgroundTasks,
        *,
        wait_directory: Callable[[float], Awaitable[bool]],
    ) -> None:
        self._store = store
        self._sink = sink
        self._tasks = tasks
        self._wait_directory = wait_directory
        # A stand-in transport (tests of the core alone) has no channel an archive could
        # answer on: history and search then use the cache only.
        self._requests = (
            ArchiveRequester(
                transport.open_channel,
                names,
                transport.login,
                confirm_timeout=settings.confirm_timeout,
            )
            if isinstance(transport, Transport)
            else None
        )
        self.archive = ArchiveClient(
            self._requests,
            store.me,
            timeout=settings.archive_timeout,
            tell_unavailable=sink.archive_unavailable,
        )
        self._backfill = Backfill(store, self.archive, sink.history_filled)
        self._search = Search(store, self.archive if self._requests else None)
        self._join_fetches: dict[Conversation, asyncio.Task[None]] = {}

    async def close(self) -> None:
        self._backfill.close()
        if self._requests is not None:
            await self._requests.close()

    async def search(
        self, text: str, conversation: Conversation | None = None, limit: int = 50
    ) -> SearchOutcome:
        """Messages with every word of `text` (plain words: FTS syntax is text), from the
        cache and the archive at once, one per message, best first. Without the archive's
        answer the cached hits still come, and the outcome says why."""
        return await self._search.run(text, conversation, limit)

    async def load_older(self, conversation: Conversation, limit: int = 100) -> int:
        """Page up to `limit` messages older than the oldest cached one into the cache,
        below every seq it holds; how many were new, 0 at the beginning. Raises
        ArchiveUnavailableError or ArchiveRefusedError."""
        if (await self._store.archive_position(conversation)).at_beginning:
            return 0
        return await self._backfill.older(conversation, limit)

    async def open_hit(self, hit: SearchHit) -> StoredMessage:
        """The message of a search result as cached, paging older history of its
        conversation in from the archive until it is there."""
        cached = await self._store.get_message(hit.message_id)
        if cached is not None:
            return cached
        return await self._backfill.until(hit.conversation, hit.message_id)

    def joined(self, group_id: str) -> None:
        """A group this client just joined: its recent history comes in the background
        (`Sink.history_filled`)."""
        conversation = Conversation.group(parse_group_id(group_id))
        self._join_fetches[conversation] = self._tasks.spawn(self._fetch_joined(conversation))

    async def wait_joined(self, group_id: str, timeout: float | None = None) -> bool:
        """Wait until the history fetch of a group joined by this client is over (for a
        command that exits after joining); whether it ended in time."""
        fetch = self._join_fetches.get(Conversation.group(parse_group_id(group_id)))
        if fetch is None:
            return True
        done, _ = await asyncio.wait({fetch}, timeout=timeout)
        return bool(done)

    async def _fetch_joined(self, conversation: Conversation) -> None:
        for attempt in range(JOIN_HISTORY_TRIES):
            try:
                await self._backfill.recent(conversation)
                return
            except ArchiveRefusedError as exc:
                if attempt + 1 == JOIN_HISTORY_TRIES:
                    self._sink.problem(f"no history for {conversation}: {exc}")
                    return
                await asyncio.sleep(1.0)
            except ChatError as exc:
                log.info("no history for %s: %s", conversation, exc)
                return

    async def fill_conversations(self, *, every_dm: bool, timeout: float | None) -> None:
        """The recent history of every conversation the cache and the directory know of
        (with `every_dm`, also every DM the archive holds of this user)."""
        me = self._store.me
        try:
            async with asyncio.timeout(timeout):
                await self._wait_directory(10.0)
                found = {s.conversation for s in await self._store.conversations()}
                found |= {Conversation.group(g) for g in await self._store.groups_of(me)}
                if every_dm:
                    found |= await self._archived_dms()
                await self._backfill.fill(sorted(found))
        except TimeoutError:
            log.warning("filling the conversations from the archive took over %s s", timeout)

    async def _archived_dms(self) -> set[Conversation]:
        """The DMs the archive holds of this user; from an archive that does not know
        DM_PEERS_REQUEST yet, the DM with each known user, up to FILL_DMS_WITH_AT_MOST."""
        try:
            answer = await self.archive.dm_peers()
        except ArchiveRefusedError as exc:
            log.info("the archive lists no DM peers (%s); asking per user", exc)
        except ArchiveUnavailableError:
            return set()  # said once already; the fill's own requests would fail too
        else:
            return {Conversation.dm(peer.peer_id) for peer in answer.peers}
        me = self._store.me
        others = [u for u in await self._store.users() if u != me]
        return {Conversation.dm(u) for u in others[:FILL_DMS_WITH_AT_MOST]}
