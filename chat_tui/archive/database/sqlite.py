"""The archive in a SQLite file: the embedded default, for one worker on one machine.

WAL, and FTS5 as an external-content table over `messages` kept in step by triggers, so
that a message and its search entry are written (and purged) by one transaction. sqlite3
blocks, so every call runs on one thread of our own, as whole transactions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from uuid import UUID

from chat_tui.archive.database.cursor import Position, from_micros, history_page, to_micros
from chat_tui.archive.database.model import (
    RANKED_MATCHES,
    ArchiveDatabaseUnavailable,
    ArchiveHit,
    ConversationRef,
    Readable,
)
from chat_tui.archive.database.rows import message_of, stored_content, unique_oldest_first
from chat_tui.archive.database.search_text import fts5_match, search_words, snippet
from chat_tui.protocol.archive import HistoryDirection
from chat_tui.protocol.models import SendMessage
from chat_tui.sqlite_files import create_private, use_write_ahead_log

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
"""How long a write waits for another connection's transaction (a second worker on the
same file) before the batch is handed back."""

SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    conversation TEXT NOT NULL,
    group_id TEXT,
    sender_id TEXT NOT NULL,
    recipient_id TEXT,
    content TEXT NOT NULL,
    sent_at INTEGER NOT NULL  -- microseconds since the epoch, UTC
);
CREATE INDEX IF NOT EXISTS messages_by_conversation
    ON messages (conversation, sent_at, message_id);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (sent_at);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    content, content='messages', content_rowid='seq', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.seq, new.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.seq, old.content);
END;
COMMIT;
"""

_COLUMNS = "m.message_id, m.sender_id, m.group_id, m.recipient_id, m.content, m.sent_at"
_READABLE = (
    "(m.group_id IN (SELECT value FROM json_each(:groups))"
    " OR (m.group_id IS NULL AND (m.sender_id = :user OR m.recipient_id = :user)))"
)

Row = tuple[str, str, str | None, str | None, str, int]


def _message(row: Row) -> SendMessage:
    message_id, sender_id, group_id, recipient_id, content, sent_at = row
    return message_of(
        UUID(message_id), sender_id, group_id, recipient_id, content, from_micros(sent_at)
    )


class SqliteArchive:
    """The ArchiveDatabase on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._connection is None:
                raise ArchiveDatabaseUnavailable(f"archive {self.path}: not open")
            try:
                return work(self._connection)
            except sqlite3.OperationalError as exc:
                # Locked past the busy timeout, disk full, an I/O error: try again later.
                raise ArchiveDatabaseUnavailable(f"archive {self.path}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def tx(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT leaves it open
                    conn.execute("ROLLBACK")
                raise
            return result

        return await self._run(tx)

    async def open(self) -> None:
        def connect() -> None:
            try:
                create_private(self.path)
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            except (OSError, sqlite3.Error) as exc:
                raise ArchiveDatabaseUnavailable(f"archive {self.path}: {exc}") from exc
            try:
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                mode = use_write_ahead_log(conn, BUSY_TIMEOUT_MS / 1000)
                if mode.lower() != "wal":
                    raise sqlite3.OperationalError(f"cannot use a write-ahead log ({mode})")
                # FULL: a commit is on disk before store() returns, and the worker acks.
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(SCHEMA)
            except sqlite3.Error as exc:
                conn.close()
                raise ArchiveDatabaseUnavailable(f"archive {self.path}: {exc}") from exc
            self._connection = conn

        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        """Close the file and end the thread; closing again does nothing."""
        if self._closed:
            return
        self._closed = True

        def disconnect() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await asyncio.get_running_loop().run_in_executor(self._executor, disconnect)
        self._executor.shutdown(wait=True)

    async def store(self, messages: Sequence[SendMessage]) -> int:
        rows = [
            (
                str(m.message_id),
                ConversationRef.of_message(m).key,
                m.group_id,
                m.sender_id,
                m.recipient_id,
                stored_content(m),
                to_micros(m.timestamp),
            )
            for m in unique_oldest_first(list(messages))
        ]
        if not rows:
            return 0

        def insert(conn: sqlite3.Connection) -> int:
            cursor = conn.executemany(
                "INSERT OR IGNORE INTO messages (message_id, conversation, group_id,"
                " sender_id, recipient_id, content, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return cursor.rowcount

        return await self._transaction(insert)

    async def history(
        self,
        conversation: ConversationRef,
        cursor: str | None,
        direction: HistoryDirection,
        limit: int,
    ) -> tuple[list[SendMessage], str | None]:
        after = Position.decode(cursor) if cursor is not None else None
        older = direction == "older"
        where = "m.conversation = :conversation"
        if after is not None:
            where += f" AND (m.sent_at, m.message_id) {'<' if older else '>'} (:micros, :id)"
        order = "DESC" if older else "ASC"
        sql = (
            f"SELECT {_COLUMNS} FROM messages AS m WHERE {where}"
            f" ORDER BY m.sent_at {order}, m.message_id {order} LIMIT :limit"
        )
        parameters = {
            "conversation": conversation.key,
            "micros": after.micros if after else None,
            "id": str(after.message_id) if after else None,
            "limit": limit + 1,  # one more than asked: is anything further?
        }

        def read(conn: sqlite3.Connection) -> list[Row]:
            return conn.execute(sql, parameters).fetchall()

        return history_page([_message(row) for row in await self._run(read)], limit, older)

    async def search(
        self, query: str, readable: Readable, within: ConversationRef | None, limit: int
    ) -> list[ArchiveHit]:
        words = search_words(query)
        if not words:
            return []
        where = f"messages_fts MATCH :match AND {_READABLE}"
        if within is not None:
            where += " AND m.conversation = :conversation"
        # FTS5 walks the matches newest first and stops at the window; bm25 is computed
        # for those only. Newest is by seq: the order of arrival, and of sent time within
        # a batch (`unique_oldest_first`); a message that comes late counts as new.
        sql = (
            "SELECT * FROM ("
            f" SELECT {_COLUMNS}, bm25(messages_fts) AS score"
            " FROM messages_fts JOIN messages AS m ON m.seq = messages_fts.rowid"
            f" WHERE {where} ORDER BY messages_fts.rowid DESC LIMIT :window"
            ") ORDER BY score, sent_at DESC, message_id LIMIT :limit"
        )
        parameters = {
            "match": fts5_match(words),
            "groups": json.dumps(sorted(readable.groups)),
            "user": readable.user_id,
            "conversation": within.key if within else None,
            "limit": limit,
            "window": RANKED_MATCHES,
        }

        def read(conn: sqlite3.Connection) -> list[tuple[Row, float]]:
            return [(row[:6], row[6]) for row in conn.execute(sql, parameters)]

        hits = []
        for row, score in await self._run(read):
            message = _message(row)
            # bm25 is lower-is-better; the contract's rank is higher-is-better.
            hits.append(ArchiveHit(message, snippet(message.content, words), -score))
        return hits

    async def dm_peers(self, user_id: str, limit: int) -> list[tuple[str, datetime]]:
        # A scan of the table: asked once per new device, and an index on either party
        # would cost every insert.
        sql = (
            "SELECT CASE WHEN sender_id = :user THEN recipient_id ELSE sender_id END AS peer,"
            " max(sent_at) AS last FROM messages"
            " WHERE group_id IS NULL AND (sender_id = :user OR recipient_id = :user)"
            " GROUP BY peer ORDER BY last DESC, peer LIMIT :limit"
        )

        def read(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            return conn.execute(sql, {"user": user_id, "limit": limit}).fetchall()

        return [(peer, from_micros(last)) for peer, last in await self._run(read)]

    async def purge_before(self, cutoff: datetime) -> int:
        micros = to_micros(cutoff)

        def delete(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM messages WHERE sent_at < ?", (micros,)).rowcount

        return await self._transaction(delete)

    async def count(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])

        return await self._run(read)
