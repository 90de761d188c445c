"""The outbox table: everything waiting to be published, in order."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from chat_tui.protocol.models import utc_now
from chat_tui.protocol.outgoing import Outgoing
from chat_tui.store.records import OutboxItem, OutboxKind
from chat_tui.store.timestamps import iso


def enqueue(
    conn: sqlite3.Connection, kind: OutboxKind, out: Outgoing, coalesce_key: str | None
) -> int:
    """Add to the outbox; return the row's seq."""
    # A newer cumulative receipt replaces one still waiting: only the latest matters.
    cursor = conn.execute(
        """INSERT INTO outbox (kind, routing_key, message_type, amqp_message_id, body,
                               coalesce_key, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(coalesce_key) DO UPDATE SET
               routing_key = excluded.routing_key, amqp_message_id = excluded.amqp_message_id,
               body = excluded.body, attempts = 0, last_error = NULL""",
        (
            kind,
            out.routing_key,
            out.message_type,
            out.amqp_message_id,
            out.body,
            coalesce_key,
            iso(utc_now()),
        ),
    )
    return cursor.lastrowid or 0


def oldest(conn: sqlite3.Connection, limit: int) -> list[OutboxItem]:
    """The oldest `limit` rows, in order."""
    rows = conn.execute(
        """SELECT seq, kind, routing_key, message_type, amqp_message_id, body, attempts
           FROM outbox ORDER BY seq LIMIT ?""",
        (limit,),
    ).fetchall()
    return [OutboxItem(**dict(row)) for row in rows]


def size(conn: sqlite3.Connection) -> int:
    """Every row: chat messages, receipts and directory events."""
    return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def pending_messages(conn: sqlite3.Connection) -> int:
    """Own chat messages still waiting (not receipts)."""
    return int(conn.execute("SELECT count(*) FROM outbox WHERE kind = 'message'").fetchone()[0])


def remove_published(conn: sqlite3.Connection, item: OutboxItem) -> None:
    # Match the AMQP ID too: a coalesced receipt may have replaced the row.
    conn.execute(
        "DELETE FROM outbox WHERE seq = ? AND amqp_message_id = ?",
        (item.seq, item.amqp_message_id),
    )


def remove(conn: sqlite3.Connection, item: OutboxItem) -> None:
    conn.execute("DELETE FROM outbox WHERE seq = ?", (item.seq,))


def record_attempt(conn: sqlite3.Connection, items: Sequence[OutboxItem], error: str) -> None:
    conn.executemany(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
        [(error, item.seq) for item in items],
    )
