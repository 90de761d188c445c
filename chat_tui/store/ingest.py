"""Storing a batch of received messages: one copy per message ID, seqs handed out in
order, and each conversation's counts brought up to date.

The per-message Python runs on the event loop (`prepare`, `new_messages`), before and
after one trip to the SQLite thread, which does only set-wise SQL (`store`): a handful
of statements per batch, whatever its size. That thread gives the GIL up in every SQLite
call and must win it back from a loop busy parsing deliveries; in a backlog it is the
slower stage of the pipeline, so its share of the work is kept small.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import SendMessage, utc_now
from chat_tui.store.database import StoreError
from chat_tui.store.records import StoredMessage
from chat_tui.store.timestamps import iso

_INSERT_ROWS = 400
"""Rows per multi-row INSERT: 8 parameters each stays far below SQLite's limit of 32,766."""

_LOOKUP_IDS = 500
"""IDs per `IN (...)` when looking for known message IDs."""


class Incoming(NamedTuple):
    """A received message, prepared on the event loop."""

    message: SendMessage
    conversation: Conversation
    row: tuple[str, str, str, str, str, str, int, str]
    """The INSERT's values: message_id, conversation_key, sender_id, content, sent_at,
    stored_at, outgoing, status."""
    outgoing: bool
    mentions_me: bool


class StoredBatch(NamedTuple):
    """What `store` wrote."""

    base: int
    """The last seq before the batch: the fresh messages got base+1, base+2, ..."""
    fresh: list[str]
    """The message IDs stored now, in order."""
    latest_from: dict[tuple[str, str], str]
    """(sender, conversation key) -> the newest fresh message ID from that sender."""
    unshown: list[int]
    """Seqs of redelivered messages that were stored but never shown (we died in between)."""


@dataclass
class _ConversationDelta:
    """What one batch changes in a conversation row."""

    last_seq: int = 0
    last_activity: str | None = None
    unread: int = 0
    mentioned: bool = False


def prepare(
    messages: Sequence[SendMessage], me: str, mentions_me: Callable[[str], bool]
) -> dict[str, Incoming]:
    """The batch keyed by message ID, in order, each prepared for its INSERT."""
    stored_at = iso(utc_now())
    # A message can sit in one batch twice (a delivery from a channel that died and
    # its redelivery on the new one): keep the first copy, or it would be shown twice
    # (fault scenario 1).
    incoming: dict[str, Incoming] = {}
    conversations: dict[tuple[str | None, str | None], Conversation] = {}
    for message in messages:
        message_id = str(message.message_id)
        if message_id in incoming:
            continue
        sender = message.sender_id
        outgoing = sender == me
        other = None if message.group_id else message.recipient_id if outgoing else sender
        conversation = conversations.get((message.group_id, other))
        if conversation is None:
            conversation = Conversation.of_message(message, me)
            conversations[(message.group_id, other)] = conversation
        sent_at = iso(message.timestamp)
        incoming[message_id] = Incoming(
            message,
            conversation,
            (
                message_id,
                conversation.key,
                sender,
                message.content,
                sent_at,
                stored_at,
                int(outgoing),
                "sent" if outgoing else "received",
            ),
            outgoing,
            not outgoing and mentions_me(message.content),
        )
    return incoming


def store(conn: sqlite3.Connection, incoming: dict[str, Incoming]) -> StoredBatch:
    """Insert the messages not stored yet, and update their conversations."""
    known = known_ids(conn, list(incoming))
    fresh = [mid for mid in incoming if mid not in known]
    # Inside this write transaction AUTOINCREMENT hands out consecutive seqs in
    # VALUES order, so they are known before the insert (checked after it).
    base = _sequence_of_messages(conn)
    touched: dict[str, _ConversationDelta] = {}
    latest_from: dict[tuple[str, str], str] = {}
    for seq, mid in enumerate(fresh, start=base + 1):
        item = incoming[mid]
        key = item.row[1]
        delta = touched.get(key)
        if delta is None:
            delta = touched[key] = _ConversationDelta()
        delta.last_seq, delta.last_activity = seq, item.row[4]
        if not item.outgoing:
            delta.unread += 1
            delta.mentioned = delta.mentioned or item.mentions_me
            latest_from[(item.message.sender_id, key)] = mid
    # The conversation rows first (messages reference them), each brought up to
    # date by this batch in the same statement that creates it if need be.
    for key, delta in touched.items():
        conn.execute(
            """INSERT INTO conversations (conversation_key, last_seq, last_activity,
                   unread_count, mentioned) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT(conversation_key) DO UPDATE SET
                   last_seq = excluded.last_seq,
                   last_activity = excluded.last_activity,
                   unread_count = unread_count + excluded.unread_count,
                   mentioned = max(mentioned, excluded.mentioned)""",
            (key, delta.last_seq, delta.last_activity, delta.unread, int(delta.mentioned)),
        )
    _insert_messages(conn, [incoming[mid].row for mid in fresh], base)
    unshown = sorted(seq for seq in known.values() if seq is not None)
    return StoredBatch(base, fresh, latest_from, unshown)


def new_messages(incoming: dict[str, Incoming], stored: StoredBatch) -> list[StoredMessage]:
    """The fresh messages as stored, built from what the event loop already holds."""
    return [
        StoredMessage(
            seq=seq,
            message_id=mid,
            conversation=incoming[mid].conversation,
            sender_id=incoming[mid].message.sender_id,
            content=incoming[mid].message.content,
            sent_at=incoming[mid].message.timestamp,
            outgoing=incoming[mid].outgoing,
            status="sent" if incoming[mid].outgoing else "received",
        )
        for seq, mid in enumerate(stored.fresh, start=stored.base + 1)
    ]


def known_ids(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, int | None]:
    """Of `ids`, those already stored: message ID -> seq if never shown, else None."""
    known: dict[str, int | None] = {}
    for start in range(0, len(ids), _LOOKUP_IDS):
        chunk = list(ids[start : start + _LOOKUP_IDS])
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT message_id, seq, shown FROM messages WHERE message_id IN ({marks})",
            chunk,
        ):
            known[row[0]] = None if row[2] else row[1]
    return known


def _sequence_of_messages(conn: sqlite3.Connection) -> int:
    """The last seq AUTOINCREMENT handed out for messages (0 before the first)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    return int(row[0]) if row else 0


def _insert_messages(
    conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]], base: int
) -> None:
    """Insert received messages in order with multi-row INSERTs, one statement per
    chunk rather than an executemany, which steps once per row. The caller has counted
    on seqs base+1, base+2, ...; a surprise rolls the batch back rather than mislabel it."""
    last = base
    for start in range(0, len(rows), _INSERT_ROWS):
        chunk = rows[start : start + _INSERT_ROWS]
        values = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        cursor = conn.execute(
            f"""INSERT INTO messages (message_id, conversation_key, sender_id, content,
                   sent_at, stored_at, outgoing, status) VALUES {values}""",
            [value for row in chunk for value in row],
        )
        last = cursor.lastrowid or 0
    if last != base + len(rows):
        raise StoreError("the cache handed out message seqs out of order")
