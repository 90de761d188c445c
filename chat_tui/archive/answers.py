"""What the archive answers an allowed request with: a page of history, search hits or
the requester's DM peers from its database, always under the protocol's body limit.

A page that would be over `MAX_BODY_BYTES` holds fewer messages: those nearest the
cursor are kept, and the page is asked for again with that limit, so that its
`next_cursor` continues right after the last message it holds and nothing is skipped.
Search keeps its best hits. A database that is down is a refusal `unavailable`, a
cursor the archive did not make one `malformed`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from chat_tui.archive.database import (
    ArchiveDatabase,
    ArchiveDatabaseUnavailable,
    ArchiveHit,
    ConversationRef,
    Readable,
)
from chat_tui.core.archive_requests import refusal
from chat_tui.protocol.archive import (
    MAX_CURSOR_CHARS,
    ArchiveAnswer,
    ArchiveRequest,
    DmPeer,
    DmPeers,
    DmPeersRequest,
    HistoryPage,
    HistoryRequest,
    SearchHit,
    SearchRequest,
    SearchResults,
)
from chat_tui.protocol.models import MAX_BODY_BYTES, SendMessage

log = logging.getLogger(__name__)

_PAGE_ENVELOPE = len(HistoryPage(messages=(), next_cursor="c" * MAX_CURSOR_CHARS).to_body())
_RESULTS_ENVELOPE = len(SearchResults(hits=()).to_body())


def _conversation(requester: str, group_id: str | None, peer_id: str | None) -> ConversationRef:
    if group_id is not None:
        return ConversationRef.group(group_id)
    assert peer_id is not None  # the request's validator allows exactly one
    return ConversationRef.dm(requester, peer_id)


def _how_many_fit(sizes: Sequence[int], room: int) -> int:
    """How many of `sizes`, taken in order, fit in `room` bytes (a comma between each)."""
    used = 0
    for count, size in enumerate(sizes):
        used += size + (1 if count else 0)
        if used > room:
            return count
    return len(sizes)


def _size(message: SendMessage) -> int:
    return len(message.to_body())


class ArchiveAnswers:
    def __init__(self, database: ArchiveDatabase) -> None:
        self.database = database

    async def answer(self, request: ArchiveRequest, groups: frozenset[str]) -> ArchiveAnswer:
        """The answer to a request the server has allowed; `groups` are the requester's."""
        try:
            if isinstance(request, HistoryRequest):
                return await self.history(request)
            if isinstance(request, DmPeersRequest):
                return await self.dm_peers(request)
            return await self.search(request, groups)
        except ArchiveDatabaseUnavailable as exc:
            log.warning("answering %s: the database is unavailable: %s", request.type, exc)
            return refusal("unavailable", "the archive's database is unavailable; ask again later")
        except ValueError as exc:  # a cursor this archive did not make
            return refusal("malformed", str(exc))

    async def history(self, request: HistoryRequest) -> HistoryPage:
        conversation = _conversation(request.requester_id, request.group_id, request.peer_id)
        limit = request.limit
        while True:
            messages, cursor = await self.database.history(
                conversation, request.cursor, request.direction, limit
            )
            page = HistoryPage(messages=tuple(messages), next_cursor=cursor)
            if len(page.to_body()) <= MAX_BODY_BYTES:
                return page
            # Keep the messages nearest the cursor: the newest of an older page, the
            # oldest of a newer one; ask again for that many, for the cursor after them.
            nearest_first = messages[::-1] if request.direction == "older" else messages
            fit = _how_many_fit([_size(m) for m in nearest_first], MAX_BODY_BYTES - _PAGE_ENVELOPE)
            if fit == 0:
                # One message over the limit on its own (its body was at the limit when
                # it came): a page without it, whose cursor goes on after it.
                log.warning("a message is too large for any page; the page skips it")
                _, cursor = await self.database.history(
                    conversation, request.cursor, request.direction, 1
                )
                return HistoryPage(messages=(), next_cursor=cursor)
            limit = min(fit, limit - 1)

    async def dm_peers(self, request: DmPeersRequest) -> DmPeers:
        found = await self.database.dm_peers(request.requester_id, request.limit)
        return DmPeers(peers=tuple(DmPeer(peer_id=peer, last_at=last) for peer, last in found))

    async def search(self, request: SearchRequest, groups: frozenset[str]) -> SearchResults:
        within = (
            None
            if request.group_id is None and request.peer_id is None
            else _conversation(request.requester_id, request.group_id, request.peer_id)
        )
        readable = Readable(user_id=request.requester_id, groups=groups)
        found = await self.database.search(request.query, readable, within, request.limit)
        hits = [self._hit(hit) for hit in found]
        fit = _how_many_fit(
            [len(hit.model_dump_json()) for hit in hits], MAX_BODY_BYTES - _RESULTS_ENVELOPE
        )
        return SearchResults(hits=tuple(hits[:fit]))

    @staticmethod
    def _hit(hit: ArchiveHit) -> SearchHit:
        return SearchHit(message=hit.message, snippet=hit.snippet, rank=hit.rank)
