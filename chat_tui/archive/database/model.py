"""What the archive's database speaks, whichever backend holds it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chat_tui.protocol.archive import HistoryDirection
from chat_tui.protocol.ids import validate_id
from chat_tui.protocol.models import SendMessage

RANKED_MATCHES = 1_000
"""Search ranks the newest this many matches the requester may read, not all of them.
A word in most messages (measured: 60 % of a million) made each search rank every one
of them, 0.1 - 0.3 s, and relevance over a year of "the" means little in a chat; any
query with fewer matches is ranked over all of them (docs/performance.md)."""


@dataclass(frozen=True)
class ConversationRef:
    """How the archive names a conversation: a group, or a DM by its two parties
    (sorted), so that both parties' requests name the same one."""

    group_id: str | None = None
    parties: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if (self.group_id is None) == (self.parties is None):
            raise ValueError("a conversation is a group or a DM, exactly one of them")
        if self.parties is not None and self.parties != tuple(sorted(self.parties)):
            raise ValueError("a DM's parties are kept sorted: use ConversationRef.dm")

    @classmethod
    def group(cls, group_id: str) -> ConversationRef:
        return cls(group_id=validate_id(group_id, "group ID"))

    @classmethod
    def dm(cls, a: str, b: str) -> ConversationRef:
        low, high = sorted((validate_id(a, "user ID"), validate_id(b, "user ID")))
        return cls(parties=(low, high))

    @classmethod
    def of_message(cls, message: SendMessage) -> ConversationRef:
        if message.group_id is not None:
            return cls(group_id=message.group_id)
        assert message.recipient_id is not None  # SendMessage has exactly one target
        low, high = sorted((message.sender_id, message.recipient_id))
        return cls(parties=(low, high))

    @property
    def key(self) -> str:
        """The stored form: `group:G` or `dm:A:B`. IDs have no ':', so it is unambiguous."""
        if self.group_id is not None:
            return f"group:{self.group_id}"
        assert self.parties is not None
        return f"dm:{self.parties[0]}:{self.parties[1]}"


@dataclass(frozen=True)
class Readable:
    """What one requester may read, from the directory: every DM with `user_id` as a
    party, and the groups `user_id` is a member of now."""

    user_id: str
    groups: frozenset[str]


@dataclass(frozen=True)
class ArchiveHit:
    message: SendMessage
    snippet: str
    """Plain text around the match, at most protocol.archive.MAX_SNIPPET_CHARS."""
    rank: float
    """Higher is better; only the order within one answer means anything."""


class ArchiveDatabaseUnavailable(Exception):
    """The database cannot be reached now (down, restarting, connection lost): the
    caller hands the batch back (requeue) or answers 'unavailable'; retry later."""


class ArchiveDatabase(Protocol):
    async def open(self) -> None:
        """Connect, and create the schema if it is missing."""

    async def close(self) -> None: ...

    async def store(self, messages: Sequence[SendMessage]) -> int:
        """One transaction; deduplicated on message_id (a second copy, also from a
        racing worker, is not stored again and is not an error); committed before it
        returns; returns how many were new."""

    async def history(
        self,
        conversation: ConversationRef,
        cursor: str | None,
        direction: HistoryDirection,
        limit: int,
    ) -> tuple[list[SendMessage], str | None]:
        """Oldest first whatever the direction; the cursor continuing that direction,
        or None when nothing is further. A malformed cursor is a ValueError."""

    async def search(
        self, query: str, readable: Readable, within: ConversationRef | None, limit: int
    ) -> list[ArchiveHit]:
        """`query` is user text: FTS syntax in it is searched as plain words, never an
        error. Only messages `readable` allows; best first, among the newest
        `RANKED_MATCHES` of them that match."""

    async def dm_peers(self, user_id: str, limit: int) -> list[tuple[str, datetime]]:
        """The users `user_id` has DMs with (itself, for notes to self), each with the
        time of their newest message, the most recent first."""

    async def purge_before(self, cutoff: datetime) -> int:
        """Retention: remove every message sent before `cutoff` (and its search
        entry); returns how many."""

    async def count(self) -> int:
        """How many messages are stored."""
