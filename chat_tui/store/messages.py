"""The messages table: own and received messages, read back with their receipt counts."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from chat_tui.protocol.conversations import Conversation
from chat_tui.store.records import MessageStatus, StoredMessage


def _marks_at_least(column: str) -> str:
    """How many receipt marks of an own message's recipients have `column` at or past
    it: one primary-key lookup per recipient (see message_recipients in schema.py). An
    own message from before recipients were kept counts every mark in its conversation."""
    # CROSS JOIN keeps the recipients outer: SQLite would otherwise scan every mark of
    # the conversation, former members' and later joiners' too.
    return f"""CASE WHEN NOT m.outgoing THEN 0
        WHEN m.recipients_recorded THEN (SELECT count(*) FROM message_recipients t
            CROSS JOIN receipt_marks r
              ON r.conversation_key = m.conversation_key AND r.member_id = t.member_id
            WHERE t.message_seq = m.seq AND r.{column} >= m.seq)
        ELSE (SELECT count(*) FROM receipt_marks r
            WHERE r.conversation_key = m.conversation_key AND r.{column} >= m.seq)
        END"""


COLUMNS = f"""
    m.seq, m.message_id, m.conversation_key, m.sender_id, m.content, m.sent_at,
    m.outgoing, m.status, m.error, m.recipient_count,
    {_marks_at_least("delivered_seq")} AS delivered_count,
    {_marks_at_least("read_seq")} AS read_count
"""

_CHUNK = 500
"""IDs per `IN (...)`: SQLite limits the number of parameters in one statement."""


def from_row(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        seq=row["seq"],
        message_id=row["message_id"],
        conversation=Conversation.parse(row["conversation_key"]),
        sender_id=row["sender_id"],
        content=row["content"],
        sent_at=datetime.fromisoformat(row["sent_at"]),
        outgoing=bool(row["outgoing"]),
        status=row["status"],
        error=row["error"],
        recipient_count=row["recipient_count"],
        delivered_count=row["delivered_count"],
        read_count=row["read_count"],
    )


def by_ids(conn: sqlite3.Connection, ids: Sequence[str]) -> list[StoredMessage]:
    """The messages of `ids` that are stored, in seq order."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM messages m WHERE m.message_id IN ({marks}) ORDER BY m.seq",
        list(ids),
    ).fetchall()
    return [from_row(r) for r in rows]


def by_seqs(conn: sqlite3.Connection, seqs: Sequence[int]) -> list[StoredMessage]:
    """The messages of `seqs`, in seq order (given sorted)."""
    result: list[StoredMessage] = []
    for start in range(0, len(seqs), _CHUNK):
        chunk = seqs[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM messages m WHERE m.seq IN ({marks}) ORDER BY m.seq",
            list(chunk),
        ).fetchall()
        result.extend(from_row(r) for r in rows)
    return result


def page(
    conn: sqlite3.Connection,
    conversation: Conversation,
    before_seq: int | None,
    after_seq: int | None,
    limit: int,
) -> list[StoredMessage]:
    """A page of a conversation in ascending order: the newest `limit` before
    `before_seq`, or the oldest `limit` after `after_seq`."""
    if after_seq is not None:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM messages m WHERE m.conversation_key = ? "
            "AND m.seq > ? ORDER BY m.seq LIMIT ?",
            (conversation.key, after_seq, limit),
        ).fetchall()
        return [from_row(r) for r in rows]
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM messages m WHERE m.conversation_key = ? "
        "AND m.seq < ? ORDER BY m.seq DESC LIMIT ?",
        (conversation.key, before_seq if before_seq is not None else 2**62, limit),
    ).fetchall()
    return [from_row(r) for r in reversed(rows)]


def count(conn: sqlite3.Connection, conversation: Conversation) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM messages WHERE conversation_key = ?", (conversation.key,)
        ).fetchone()[0]
    )


def insert_own(
    conn: sqlite3.Connection,
    *,
    message_id: str,
    conversation_key: str,
    sender_id: str,
    content: str,
    sent_at: str,
    stored_at: str,
    recipients: Sequence[str],
) -> int:
    """Write an own message, queued and already shown, with the people it goes to;
    return its seq."""
    cursor = conn.execute(
        """INSERT INTO messages (message_id, conversation_key, sender_id, content,
               sent_at, stored_at, outgoing, status, recipient_count, shown,
               recipients_recorded)
           VALUES (?, ?, ?, ?, ?, ?, 1, 'queued', ?, 1, 1)""",
        (message_id, conversation_key, sender_id, content, sent_at, stored_at, len(recipients)),
    )
    seq = cursor.lastrowid or 0
    # Two parameters a row, within the budget of _CHUNK: one statement for any group
    # of a usual size.
    rows_per_insert = _CHUNK // 2
    for start in range(0, len(recipients), rows_per_insert):
        chunk = recipients[start : start + rows_per_insert]
        conn.execute(
            "INSERT INTO message_recipients (message_seq, member_id) VALUES "
            + ",".join(["(?, ?)"] * len(chunk)),
            [value for member in chunk for value in (seq, member)],
        )
    return seq


def mark_sent(conn: sqlite3.Connection, message_id: str) -> bool:
    """A queued own message was confirmed by the broker; False if it was not queued."""
    cursor = conn.execute(
        "UPDATE messages SET status = 'sent' WHERE message_id = ? AND status = 'queued'",
        (message_id,),
    )
    return bool(cursor.rowcount)


def mark_failed(conn: sqlite3.Connection, message_id: str, reason: str) -> None:
    conn.execute(
        "UPDATE messages SET status = 'failed', error = ? WHERE message_id = ?",
        (reason, message_id),
    )


def set_status(conn: sqlite3.Connection, seq: int, status: MessageStatus) -> None:
    conn.execute("UPDATE messages SET status = ? WHERE seq = ?", (status, seq))


def mark_shown(conn: sqlite3.Connection, seqs: Sequence[int]) -> None:
    for start in range(0, len(seqs), _CHUNK):
        chunk = list(seqs[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        conn.execute(f"UPDATE messages SET shown = 1 WHERE seq IN ({marks})", chunk)


def latest_per_sender(
    conn: sqlite3.Connection, conversation_key: str, after_seq: int, up_to_seq: int
) -> list[tuple[str, str]]:
    """(sender, message ID) of each other sender's newest message in the seq range,
    leaving out what came from the archive: its senders get no receipts for it."""
    rows = conn.execute(
        """SELECT sender_id, message_id, max(seq) FROM messages
           WHERE conversation_key = ? AND seq > ? AND seq <= ? AND outgoing = 0
               AND from_archive = 0
           GROUP BY sender_id""",
        (conversation_key, after_seq, up_to_seq),
    ).fetchall()
    return [(sender, message_id) for sender, message_id, _seq in rows]
