"""Storing history from the archive: a conversation's older messages, or ones missed.

A conversation is ordered by seq (its local arrival order, store/messages.py `page`).
A message from the archive that is older than the conversation's first cached message
(by the archive's own order: timestamp, then message ID) gets a seq below every seq in
the cache, which may be negative, so it sorts before what is cached and below every
read mark; the rest (messages missed while the inbox was gone) go after the newest.
Either way a backfilled message is already read, already shown (a later copy from the
inbox is a duplicate, not news), never counted unread and never receipted
(`from_archive`). Message IDs already cached are skipped, in either direction.

How far back the archive has been read is kept per conversation in `meta`: the cursor
that continues older, and whether the archive said there is nothing older.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from chat_tui.store import meta
from chat_tui.store.ingest import Incoming, known_ids

_INSERT_ROWS = 300
"""Rows per multi-row INSERT: 10 parameters each stays far below SQLite's limit."""


@dataclass(frozen=True)
class ArchivePosition:
    """How far back a conversation's history has been read from the archive."""

    older_cursor: str | None
    """Where the next older page starts; None: from the newest message back."""
    at_beginning: bool
    """The archive said nothing is older than what is cached."""


def _cursor_key(conversation_key: str) -> str:
    return f"archive.older_cursor.{conversation_key}"


def _beginning_key(conversation_key: str) -> str:
    return f"archive.at_beginning.{conversation_key}"


def position(conn: sqlite3.Connection, conversation_key: str) -> ArchivePosition:
    return ArchivePosition(
        meta.get(conn, _cursor_key(conversation_key)),
        meta.get(conn, _beginning_key(conversation_key)) == "1",
    )


def set_position(conn: sqlite3.Connection, conversation_key: str, at: ArchivePosition) -> None:
    if at.older_cursor is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (_cursor_key(conversation_key),))
    else:
        meta.put(conn, _cursor_key(conversation_key), at.older_cursor)
    meta.put(conn, _beginning_key(conversation_key), "1" if at.at_beginning else "0")


def store(conn: sqlite3.Connection, incoming: dict[str, Incoming]) -> dict[str, int]:
    """Insert the messages not cached yet; how many were new, per conversation key."""
    known = known_ids(conn, list(incoming))
    by_conversation: dict[str, list[Incoming]] = {}
    for message_id, item in incoming.items():
        if message_id not in known:
            by_conversation.setdefault(item.conversation.key, []).append(item)
    counts: dict[str, int] = {}
    for key, items in by_conversation.items():
        _store_conversation(conn, key, items)
        counts[key] = len(items)
    return counts


def _order(item: Incoming) -> tuple[str, str]:
    """The archive's order within a conversation: timestamp, then message ID."""
    return item.row[4], item.row[0]


def _store_conversation(conn: sqlite3.Connection, key: str, items: list[Incoming]) -> None:
    first = conn.execute(
        "SELECT sent_at, message_id FROM messages WHERE conversation_key = ? ORDER BY seq LIMIT 1",
        (key,),
    ).fetchone()
    boundary = None if first is None else (first[0], first[1])
    items = sorted(items, key=_order)
    older = [i for i in items if boundary is None or _order(i) < boundary]
    later = [i for i in items if boundary is not None and _order(i) >= boundary]
    # Two subqueries: SQLite reads min() or max() off the key alone, not both at once.
    lowest, highest = conn.execute(
        "SELECT (SELECT min(seq) FROM messages), (SELECT max(seq) FROM messages)"
    ).fetchone()
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    # Below every seq in the cache, and below 1 so that no read mark (0 or more) is under it.
    start = min(lowest if lowest is not None else 1, 1) - len(older)
    rows = [(seq, item) for seq, item in enumerate(older, start=start)]
    # After every seq ever handed out, as AUTOINCREMENT would go on.
    after = max(highest or 0, int(row[0]) if row else 0)
    rows += [(seq, item) for seq, item in enumerate(later, start=after + 1)]
    # The conversation row first: messages reference it.
    conn.execute("INSERT OR IGNORE INTO conversations (conversation_key) VALUES (?)", (key,))
    _insert(conn, rows)
    conn.execute(
        """UPDATE conversations SET
               last_seq = (SELECT max(seq) FROM messages WHERE conversation_key = ?1),
               last_activity = max(coalesce(last_activity, ''), ?2)
           WHERE conversation_key = ?1""",
        (key, max(item.row[4] for item in items)),
    )
    if later:
        # Missed messages that come after what is cached: read, unless something
        # before them still was not, whose unread mark must stay where it is.
        conn.execute(
            """UPDATE conversations SET last_read_seq = last_seq
               WHERE conversation_key = ? AND unread_count = 0""",
            (key,),
        )


def _insert(conn: sqlite3.Connection, rows: Sequence[tuple[int, Incoming]]) -> None:
    for start in range(0, len(rows), _INSERT_ROWS):
        chunk = rows[start : start + _INSERT_ROWS]
        values = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1, 0, 1)"] * len(chunk))
        conn.execute(
            f"""INSERT INTO messages (seq, message_id, conversation_key, sender_id, content,
                   sent_at, stored_at, outgoing, status, shown, from_archive,
                   recipient_count, recipients_recorded) VALUES {values}""",
            [value for seq, item in chunk for value in (seq, *item.row)],
        )
