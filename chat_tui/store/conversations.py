"""The conversations table: one row per conversation with its read mark, unread count
and mention flag."""

from __future__ import annotations

import sqlite3

from chat_tui.protocol.conversations import Conversation
from chat_tui.store.records import ConversationSummary
from chat_tui.store.timestamps import parse_time


def ensure(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("INSERT OR IGNORE INTO conversations (conversation_key) VALUES (?)", (key,))


def summaries(conn: sqlite3.Connection, me: str) -> list[ConversationSummary]:
    """Every conversation to list: the groups `me` is in, and any with messages."""
    rows = conn.execute(
        """SELECT c.*,
               CASE WHEN c.conversation_key LIKE 'group:%' THEN EXISTS(
                   SELECT 1 FROM directory_members d
                   WHERE 'group:' || d.group_id = c.conversation_key AND d.user_id = ?)
               ELSE 1 END AS active
           FROM conversations c ORDER BY c.conversation_key""",
        (me,),
    ).fetchall()
    return [
        ConversationSummary(
            conversation=Conversation.parse(r["conversation_key"]),
            unread_count=r["unread_count"],
            last_read_seq=r["last_read_seq"],
            last_seq=r["last_seq"],
            mentioned=bool(r["mentioned"]),
            last_activity=parse_time(r["last_activity"]),
        )
        for r in rows
        if r["active"] or r["last_seq"]
    ]


def read_by_sending(conn: sqlite3.Connection, key: str, seq: int, sent_at: str) -> None:
    """An own message at `seq`: everything before it counts as read."""
    conn.execute(
        """UPDATE conversations SET last_seq = ?, last_activity = ?, unread_count = 0,
               mentioned = 0, last_read_seq = ? WHERE conversation_key = ?""",
        (seq, sent_at, seq, key),
    )


def mark_read(conn: sqlite3.Connection, key: str, up_to_seq: int) -> tuple[int, int] | None:
    """Move the read mark up to `up_to_seq` and recount the unread messages. Returns
    the mark before and after, or None if it did not move."""
    row = conn.execute(
        "SELECT last_read_seq FROM conversations WHERE conversation_key = ?", (key,)
    ).fetchone()
    newest = conn.execute(
        "SELECT coalesce(max(seq), 0) FROM messages WHERE conversation_key = ?", (key,)
    ).fetchone()[0]
    # Never past the newest message: a mark beyond it would swallow later reads.
    up_to = min(up_to_seq, newest)
    if row is None or up_to <= row["last_read_seq"]:
        return None
    unread = conn.execute(
        """SELECT count(*) FROM messages WHERE conversation_key = ? AND seq > ?
               AND outgoing = 0 AND from_archive = 0""",
        (key, up_to),
    ).fetchone()[0]
    conn.execute(
        """UPDATE conversations SET last_read_seq = ?, unread_count = ?,
               mentioned = CASE WHEN ? = 0 THEN 0 ELSE mentioned END
           WHERE conversation_key = ?""",
        (up_to, unread, unread, key),
    )
    return int(row["last_read_seq"]), int(up_to)
