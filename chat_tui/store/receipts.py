"""Receipts for own messages: per-member marks (how far each member has received and
read a conversation) and the log of when each mark moved."""

from __future__ import annotations

import sqlite3

from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import ReceiveMessage
from chat_tui.store.records import MemberReceipt
from chat_tui.store.timestamps import iso, parse_time


class NotARecipient(Exception):
    """A receipt for an own message from someone it was not sent to."""


def fold(conn: sqlite3.Connection, receipt: ReceiveMessage, me: str) -> list[int]:
    """Move the sender's mark up to the message it names (read implies delivered) and
    log it. Returns the seqs of the own messages whose counts that changed; raises
    NotARecipient, changing nothing, for a receipt from someone who was not sent it."""
    member = receipt.recipient_id
    row = conn.execute(
        """SELECT seq, conversation_key, recipients_recorded,
               EXISTS(SELECT 1 FROM message_recipients
                      WHERE message_seq = messages.seq AND member_id = ?) AS recipient
           FROM messages WHERE message_id = ? AND outgoing = 1 AND from_archive = 0""",
        (member, str(receipt.message_id)),
    ).fetchone()
    if row is None:
        # Not ours, from before this cache existed, or ours from the archive (sent from
        # another device: whom it went to is not known here, so nothing counts for it).
        return []
    seq, key = row["seq"], row["conversation_key"]
    if member == me:
        return []  # our own receipts never count (a DM to ourselves stays sent)
    recipient = (
        row["recipient"]
        if row["recipients_recorded"]
        else _was_sent_before_recording(conn, key, member)
    )
    if not recipient:
        raise NotARecipient(member)
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


def _was_sent_before_recording(conn: sqlite3.Connection, key: str, member: str) -> bool:
    """For an own message from before recipients were recorded: the DM's other party, or
    a member of the group now (the rule of those versions)."""
    conversation = Conversation.parse(key)
    if conversation.kind == "dm":
        return conversation.name == member
    return (
        conn.execute(
            "SELECT 1 FROM directory_members WHERE group_id = ? AND user_id = ?",
            (conversation.name, member),
        ).fetchone()
        is not None
    )


def details(conn: sqlite3.Connection, message_id: str) -> list[MemberReceipt]:
    """Who of its recipients received and read an own message, and when (from the
    receipt log)."""
    row = conn.execute(
        "SELECT seq, conversation_key, recipients_recorded FROM messages WHERE message_id = ?",
        (message_id,),
    ).fetchone()
    if row is None:
        return []
    # Driven by the recipients (CROSS JOIN keeps them outer): a mark of someone else's
    # may cover this message (it is cumulative over the conversation), but was never
    # about it.
    source = (
        """message_recipients t CROSS JOIN receipt_log l
               ON l.conversation_key = :key AND l.member_id = t.member_id
           WHERE t.message_seq = :seq"""
        if row["recipients_recorded"]
        else "receipt_log l WHERE l.conversation_key = :key"
    )
    rows = conn.execute(
        f"""SELECT l.member_id,
               min(CASE WHEN l.up_to_seq >= :seq THEN l.at END) AS delivered_at,
               min(CASE WHEN l.up_to_seq >= :seq AND l.status = 'read' THEN l.at END)
                   AS read_at
           FROM {source}
           GROUP BY l.member_id ORDER BY l.member_id""",
        {"seq": row["seq"], "key": row["conversation_key"]},
    ).fetchall()
    return [
        MemberReceipt(r["member_id"], parse_time(r["delivered_at"]), parse_time(r["read_at"]))
        for r in rows
        if r["delivered_at"] is not None
    ]
