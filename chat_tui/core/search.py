"""Search across every conversation: the local cache's FTS5 index and the archive,
asked at the same time and merged.

The two rank on scales that cannot be compared (bm25 here, the archive's own there), so
the lists are merged by reciprocal rank fusion: each hit scores 1 / (K + its place) in
each list it is in, summed. A message in both comes once, ahead of one found by only one
of them at the same place. The archive's wait is bounded by `archive_timeout`; without
its answer the local hits still come back, and the outcome says why the archive's are
missing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from chat_tui.core.archive_client import ArchiveClient
from chat_tui.core.errors import ArchiveRefusedError, ArchiveUnavailableError, InvalidInputError
from chat_tui.protocol.archive import MAX_QUERY_CHARS, MAX_SNIPPET_CHARS, SearchResults
from chat_tui.protocol.conversations import Conversation
from chat_tui.store import Store
from chat_tui.store.search import LocalHit

ArchiveAnswer = Literal["answered", "unavailable", "refused", "not_asked"]

_FUSION_K = 60
"""The usual constant of reciprocal rank fusion: it damps the head of each list."""


@dataclass(frozen=True)
class SearchHit:
    conversation: Conversation
    """As this user sees it: the group, or the DM with the other party."""
    message_id: str
    sender_id: str
    sent_at: datetime
    snippet: str
    """Plain text around the match."""
    content: str
    in_cache: bool
    """Open it at once; otherwise `History.open_hit` brings it into the cache first."""
    seq: int | None
    """Its seq in the cache, when it is there."""


@dataclass(frozen=True)
class SearchOutcome:
    hits: list[SearchHit]
    """One per message, best first."""
    archive: ArchiveAnswer
    archive_detail: str | None = None
    """Why the archive's hits are missing, fit to show."""


def check_query(text: str) -> str:
    if not text.strip():
        raise InvalidInputError("search for what? the text is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInputError(f"a search is at most {MAX_QUERY_CHARS} characters")
    return text


def check_limit(limit: int) -> int:
    if limit < 1:
        raise InvalidInputError(f"a search returns at least one result, not {limit}")
    return limit


class Search:
    def __init__(self, store: Store, archive: ArchiveClient | None) -> None:
        self._store = store
        self._archive = archive

    async def run(self, text: str, conversation: Conversation | None, limit: int) -> SearchOutcome:
        check_query(text)
        check_limit(limit)
        local_task = asyncio.ensure_future(self._store.search(text, conversation, limit))
        if self._archive is None:
            return SearchOutcome(self._merge(await local_task, None, limit), "not_asked")
        archive: ArchiveAnswer = "answered"
        detail: str | None = None
        results: SearchResults | None = None
        try:
            results = await self._archive.search(text, conversation, limit)
        except ArchiveUnavailableError as exc:
            archive, detail = "unavailable", str(exc)
        except ArchiveRefusedError as exc:
            archive, detail = "refused", str(exc)
        local = await local_task
        hits = self._merge(local, results, limit)
        return SearchOutcome(await self._mark_cached(hits), archive, detail)

    def _merge(
        self, local: list[LocalHit], archived: SearchResults | None, limit: int
    ) -> list[SearchHit]:
        scores: dict[str, float] = {}
        hits: dict[str, SearchHit] = {}
        for place, found in enumerate(local):
            stored = found.message
            scores[stored.message_id] = 1 / (_FUSION_K + place + 1)
            hits[stored.message_id] = SearchHit(
                conversation=stored.conversation,
                message_id=stored.message_id,
                sender_id=stored.sender_id,
                sent_at=stored.sent_at,
                snippet=found.snippet,
                content=stored.content,
                in_cache=True,
                seq=stored.seq,
            )
        me = self._store.me
        for place, remote in enumerate(archived.hits if archived else ()):
            message = remote.message
            message_id = str(message.message_id)
            scores[message_id] = scores.get(message_id, 0.0) + 1 / (_FUSION_K + place + 1)
            if message_id not in hits:
                hits[message_id] = SearchHit(
                    conversation=Conversation.of_message(message, me),
                    message_id=message_id,
                    sender_id=message.sender_id,
                    sent_at=message.timestamp,
                    snippet=remote.snippet[:MAX_SNIPPET_CHARS],
                    content=message.content,
                    in_cache=False,
                    seq=None,
                )
        # Equal scores: the newer message first.
        best = sorted(hits, key=lambda mid: (scores[mid], hits[mid].sent_at), reverse=True)
        return [hits[mid] for mid in best[:limit]]

    async def _mark_cached(self, hits: list[SearchHit]) -> list[SearchHit]:
        """An archive hit may be cached without being among the local best."""
        unknown = [hit.message_id for hit in hits if not hit.in_cache]
        if not unknown:
            return hits
        cached = {m.message_id: m.seq for m in await self._store.messages_by_id(unknown)}
        return [
            replace(hit, in_cache=True, seq=cached[hit.message_id])
            if hit.message_id in cached
            else hit
            for hit in hits
        ]
