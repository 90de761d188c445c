"""The archive in PostgreSQL: what several workers on several machines share.

asyncpg, a small pool per worker. Search is a `tsvector` column generated from the
content with the 'simple' configuration (no stemming, no stop words: chat is in any
language) under a GIN index; `plainto_tsquery` reads user text as plain words, so no
query is an error. Who may read a row is a second `tsvector` under its own GIN index
(`access`: its group, or a DM's two parties), so that a search ANDs the two in the
index instead of reading every match from the table to check it. Losing the server is
`ArchiveDatabaseUnavailable`, and the pool connects again by itself once it is back."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

import asyncpg

from chat_tui.archive.database.cursor import Position, history_page
from chat_tui.archive.database.model import (
    RANKED_MATCHES,
    ArchiveDatabaseUnavailable,
    ArchiveHit,
    ConversationRef,
    Readable,
)
from chat_tui.archive.database.rows import message_of, sorted_unique, stored_content
from chat_tui.archive.database.search_text import postgres_text, search_words, snippet
from chat_tui.protocol.archive import HistoryDirection
from chat_tui.protocol.ids import validate_id
from chat_tui.protocol.models import SendMessage

T = TypeVar("T")

log = logging.getLogger(__name__)

POOL_SIZE = 4
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
"""A server that stops answering is the same as one that is down: hand the work back."""
SCHEMA_TIMEOUT = 3_600.0
"""Creating the schema can mean adding `access` to an archive made before it: a rewrite
of the table (7 s for a million messages here), far past COMMAND_TIMEOUT on a big one;
a worker starting meanwhile waits for it as long."""
SCHEMA_LOCK = 0x63686174_61726368  # "chatarch": one worker at a time creates the schema

SCHEMA = """
CREATE TABLE IF NOT EXISTS archive_messages (
    message_id uuid PRIMARY KEY,
    conversation text NOT NULL,
    group_id text,
    sender_id text NOT NULL,
    recipient_id text,
    content text NOT NULL,
    sent_at timestamptz NOT NULL,
    search tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED
);
ALTER TABLE archive_messages ADD COLUMN IF NOT EXISTS access tsvector GENERATED ALWAYS AS (
    CASE WHEN group_id IS NOT NULL THEN array_to_tsvector(ARRAY['g:' || group_id])
    ELSE array_to_tsvector(ARRAY['u:' || sender_id, 'u:' || recipient_id]) END
) STORED;
CREATE INDEX IF NOT EXISTS archive_messages_by_conversation
    ON archive_messages (conversation, sent_at, message_id);
CREATE INDEX IF NOT EXISTS archive_messages_by_time ON archive_messages (sent_at);
CREATE INDEX IF NOT EXISTS archive_messages_search ON archive_messages USING gin (search);
CREATE INDEX IF NOT EXISTS archive_messages_access ON archive_messages USING gin (access);
"""

SCHEMA_IS_CURRENT = """
SELECT to_regclass('archive_messages_access') IS NOT NULL AND EXISTS (
    SELECT 1 FROM pg_attribute
    WHERE attrelid = to_regclass('archive_messages') AND attname = 'access'
    AND NOT attisdropped
)
"""
"""The newest objects of SCHEMA exist, so all of it does: a worker that starts then runs
no DDL, which would lock the table (ADD COLUMN IF NOT EXISTS takes its lock before it
looks) against the other workers' inserts and searches."""
TABLE_WITHOUT_ACCESS = """
SELECT to_regclass('archive_messages') IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM pg_attribute
    WHERE attrelid = to_regclass('archive_messages') AND attname = 'access'
    AND NOT attisdropped
)
"""

_COLUMNS = "m.message_id, m.sender_id, m.group_id, m.recipient_id, m.content, m.sent_at"
_INSERTED = re.compile(r"INSERT \d+ (\d+)")
_DELETED = re.compile(r"DELETE (\d+)")

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or was lost
    asyncpg.exceptions.OperatorInterventionError,  # 57: shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # 53: disk full, too many connections
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect or command timeout
)
"""What a server that is down, restarting or unreachable raises through asyncpg."""


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    # A pooled connection that the server closed under us.
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def access_query(readable: Readable) -> str:
    """The `access` lexemes `readable` may read, as a tsquery: any of its groups, or a
    DM with the requester as a party. IDs are validated, so none needs escaping."""
    tokens = [f"g:{validate_id(group, 'group ID')}" for group in sorted(readable.groups)]
    tokens.append(f"u:{validate_id(readable.user_id, 'user ID')}")
    return " | ".join(f"'{token}'" for token in tokens)


def _message(row: asyncpg.Record) -> SendMessage:
    return message_of(
        row["message_id"],
        row["sender_id"],
        row["group_id"],
        row["recipient_id"],
        row["content"],
        row["sent_at"],
    )


def _status_count(pattern: re.Pattern[str], status: str) -> int:
    found = pattern.fullmatch(status)
    if found is None:
        raise RuntimeError(f"unexpected command status {status!r}")
    return int(found.group(1))


class PostgresArchive:
    """The ArchiveDatabase in one PostgreSQL database (`dsn`)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None

    def _where(self) -> str:
        """The server, for messages: never the password."""
        return self.dsn.split("@")[-1] if "@" in self.dsn else self.dsn

    async def _with_connection(
        self, work: Callable[[asyncpg.pool.PoolConnectionProxy], Awaitable[T]]
    ) -> T:
        """Run `work` on a pooled connection; once more on a fresh one if the first was
        lost (a server restart leaves the pool's idle connections dead). Every
        operation here is safe to repeat: a store is deduplicated on message_id."""
        if self._pool is None:
            raise ArchiveDatabaseUnavailable(f"archive {self._where()}: not open")
        for attempt in (1, 2):
            try:
                async with self._pool.acquire() as conn:
                    return await work(conn)
            except Exception as exc:
                if not _unavailable(exc):
                    raise
                if attempt == 2:
                    raise ArchiveDatabaseUnavailable(
                        f"archive {self._where()}: {type(exc).__name__}: {exc}"
                    ) from exc
        raise AssertionError("unreachable")

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=POOL_SIZE,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
            )
        except Exception as exc:
            if _unavailable(exc):
                raise ArchiveDatabaseUnavailable(f"archive {self._where()}: {exc}") from exc
            raise

        async def create_schema(conn: asyncpg.pool.PoolConnectionProxy) -> None:
            if await conn.fetchval(SCHEMA_IS_CURRENT):
                return
            async with conn.transaction():
                # Two workers starting at once would race on CREATE ... IF NOT EXISTS.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK, timeout=SCHEMA_TIMEOUT
                )
                if await conn.fetchval(TABLE_WITHOUT_ACCESS):
                    log.warning(
                        "adding the access column to the archive's table %s: a rewrite "
                        "of the table, during which the other workers wait",
                        self._where(),
                    )
                await conn.execute(SCHEMA, timeout=SCHEMA_TIMEOUT)

        try:
            await self._with_connection(create_schema)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def store(self, messages: Sequence[SendMessage]) -> int:
        unique = sorted_unique(list(messages))
        if not unique:
            return 0
        columns = (
            [m.message_id for m in unique],
            [ConversationRef.of_message(m).key for m in unique],
            [m.group_id for m in unique],
            [m.sender_id for m in unique],
            [m.recipient_id for m in unique],
            [stored_content(m) for m in unique],
            [m.timestamp for m in unique],
        )

        async def insert(conn: asyncpg.pool.PoolConnectionProxy) -> int:
            # One statement, so one transaction; rows in message_id order (see
            # sorted_unique), so racing workers lock the same rows in the same order.
            status = await conn.execute(
                "INSERT INTO archive_messages (message_id, conversation, group_id,"
                " sender_id, recipient_id, content, sent_at)"
                " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],"
                " $5::text[], $6::text[], $7::timestamptz[])"
                " ON CONFLICT (message_id) DO NOTHING",
                *columns,
            )
            return _status_count(_INSERTED, status)

        return await self._with_connection(insert)

    async def history(
        self,
        conversation: ConversationRef,
        cursor: str | None,
        direction: HistoryDirection,
        limit: int,
    ) -> tuple[list[SendMessage], str | None]:
        after = Position.decode(cursor) if cursor is not None else None
        older = direction == "older"
        order = "DESC" if older else "ASC"
        arguments: list[object] = [conversation.key, limit + 1]  # one more: is there more?
        where = "m.conversation = $1"
        if after is not None:
            where += f" AND (m.sent_at, m.message_id) {'<' if older else '>'} ($3, $4)"
            arguments += [after.timestamp, after.message_id]
        sql = (
            f"SELECT {_COLUMNS} FROM archive_messages AS m WHERE {where}"
            f" ORDER BY m.sent_at {order}, m.message_id {order} LIMIT $2"
        )

        async def read(conn: asyncpg.pool.PoolConnectionProxy) -> list[asyncpg.Record]:
            return await conn.fetch(sql, *arguments)

        return history_page(
            [_message(row) for row in await self._with_connection(read)], limit, older
        )

    async def search(
        self, query: str, readable: Readable, within: ConversationRef | None, limit: int
    ) -> list[ArchiveHit]:
        words = search_words(query)
        if not words:
            return []
        arguments: list[object] = [
            postgres_text(query),
            access_query(readable),
            limit,
            RANKED_MATCHES,
        ]
        # A literal, not a subquery: the planner sees how many rows it names (a
        # subquery's value is unknown to it, and it then misjudged every plan).
        where = "m.search @@ plainto_tsquery('simple', $1) AND m.access @@ $2::tsquery"
        if within is not None:
            where += " AND m.conversation = $5"
            arguments.append(within.key)
        # Normalization 1: divided by 1 + log(length), so a short message that is all
        # about the words ranks above a long one that mentions them once.
        sql = (
            f"WITH newest AS (SELECT {_COLUMNS}, m.search FROM archive_messages AS m"
            f" WHERE {where} ORDER BY m.sent_at DESC, m.message_id DESC LIMIT $4)"
            f" SELECT {_COLUMNS}, ts_rank(m.search, plainto_tsquery('simple', $1), 1) AS rank"
            " FROM newest AS m ORDER BY rank DESC, m.sent_at DESC, m.message_id LIMIT $3"
        )

        async def read(conn: asyncpg.pool.PoolConnectionProxy) -> list[asyncpg.Record]:
            return await conn.fetch(sql, *arguments)

        return [
            ArchiveHit(message, snippet(message.content, words), float(row["rank"]))
            for row in await self._with_connection(read)
            for message in (_message(row),)
        ]

    async def dm_peers(self, user_id: str, limit: int) -> list[tuple[str, datetime]]:
        # `access` names a DM's two parties: its index finds the user's DMs.
        sql = (
            "SELECT CASE WHEN sender_id = $1 THEN recipient_id ELSE sender_id END AS peer,"
            " max(sent_at) AS last FROM archive_messages"
            " WHERE access @@ $2::tsquery AND group_id IS NULL"
            " GROUP BY peer ORDER BY last DESC, peer LIMIT $3"
        )
        party = f"'u:{validate_id(user_id, 'user ID')}'"

        async def read(conn: asyncpg.pool.PoolConnectionProxy) -> list[asyncpg.Record]:
            return await conn.fetch(sql, user_id, party, limit)

        return [(row["peer"], row["last"]) for row in await self._with_connection(read)]

    async def purge_before(self, cutoff: datetime) -> int:
        async def delete(conn: asyncpg.pool.PoolConnectionProxy) -> int:
            status = await conn.execute("DELETE FROM archive_messages WHERE sent_at < $1", cutoff)
            return _status_count(_DELETED, status)

        return await self._with_connection(delete)

    async def count(self) -> int:
        async def read(conn: asyncpg.pool.PoolConnectionProxy) -> int:
            return int(await conn.fetchval("SELECT count(*) FROM archive_messages"))

        return await self._with_connection(read)
