"""Receipts for own messages: per-member marks (how far each member has received and
read a conversation) and the log of when each mark moved."""

from __future__ import annotations

import sqlite3

from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import ReceiveMessage
from chat_tui.store.records import MemberReceipt
from chat_tui.store.timestamps import iso, parse_time


def fold(conn: sqlite3.Connection, receipt: ReceiveMessage, me: str) -> list[int]:
    """Move the sender's mark up to the message it names (read implies delivered) and
    log it. Returns the seqs of the own messages whose counts that changed."""
    row = conn.execute(
        "SELECT seq, conversation_key FROM messages WHERE message_id = ? AND outgoing = 1",
        (str(receipt.message_id),),
    ).fetchone()
    if row is None:
        return []  # not ours, or from before this cache existed
    seq, key = row["seq"], row["conversation_key"]
    member = receipt.recipient_id
    conversation = Conversation.parse(key)
    if member == me or (conversation.kind == "dm" and conversation.name != member):
        return []  # a receipt from someone who was never sent this message
    conn.execute(
        "INSERT OR IGNORE INTO receipt_marks (conversation_key, member_id) VALUES (?, ?)",
        (key, member),
    )
    old = conn.execute(
        "SELECT delivered_seq, read_seq FROM receipt_marks "
        "WHERE conversation_key = ? AND member_id = ?",
        (key, member),
    ).fetchone()
    column = "read_seq" if receipt.status == "read" else "delivered_seq"
    before = min(old["delivered_seq"], old[column])
    if old[column] >= seq and old["delivered_seq"] >= seq:
        return []
    conn.execute(
        f"""UPDATE receipt_marks SET delivered_seq = max(delivered_seq, ?),
               {column} = max({column}, ?)
            WHERE conversation_key = ? AND member_id = ?""",
        (seq, seq, key, member),
    )
    conn.execute(
        "INSERT INTO receipt_log (conversation_key, member_id, status, up_to_seq, at) "
        "VALUES (?, ?, ?, ?, ?)",
        (key, member, receipt.status, seq, iso(receipt.timestamp)),
    )
    rows = conn.execute(
        "SELECT seq FROM messages WHERE conversation_key = ? AND outgoing = 1 "
        "AND seq > ? AND seq <= ?",
        (key, before, seq),
    ).fetchall()
    return [r["seq"] for r in rows]


def details(conn: sqlite3.Connection, message_id: str) -> list[MemberReceipt]:
    """Who received and read an own message, and when (from the receipt log)."""
    row = conn.execute(
        "SELECT seq, conversation_key FROM messages WHERE message_id = ?", (message_id,)
    ).fetchone()
    if row is None:
        return []
    rows = conn.execute(
        """SELECT member_id,
               min(CASE WHEN up_to_seq >= ? THEN at END) AS delivered_at,
               min(CASE WHEN up_to_seq >= ? AND status = 'read' THEN at END) AS read_at
           FROM receipt_log WHERE conversation_key = ?
           GROUP BY member_id ORDER BY member_id""",
        (row["seq"], row["seq"], row["conversation_key"]),
    ).fetchall()
    return [
        MemberReceipt(r["member_id"], parse_time(r["delivered_at"]), parse_time(r["read_at"]))
        for r in rows
        if r["delivered_at"] is not None
    ]
