"""The directory as the cache knows it (users, groups, members), folded from the
directory stream, and the address check of an own message."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import DirectoryEvent, SendMessage
from chat_tui.store import conversations
from chat_tui.store.records import SendRefusal, SendRefused
from chat_tui.store.timestamps import iso


def apply(conn: sqlite3.Connection, events: Sequence[DirectoryEvent], me: str) -> bool:
    """Fold directory events in stream order. Each event sets a fact to a value, so
    replaying the stream from the start onto any earlier fold gives the same state.
    Returns whether anything changed."""
    before = conn.total_changes
    for event in events:
        at = iso(event.timestamp)
        conn.execute(
            "INSERT OR IGNORE INTO directory_users (user_id, registered_at) VALUES (?, ?)",
            (event.user_id, at),
        )
        group = event.group_id
        if event.event == "created" and group is not None:
            conn.execute(
                "INSERT OR IGNORE INTO directory_groups (group_id, created_by, "
                "created_at) VALUES (?, ?, ?)",
                (group, event.user_id, at),
            )
        elif event.event == "joined" and group is not None:
            conn.execute(
                "INSERT OR IGNORE INTO directory_members (group_id, user_id, joined_at) "
                "VALUES (?, ?, ?)",
                (group, event.user_id, at),
            )
            if event.user_id == me:
                conversations.ensure(conn, Conversation.group(group).key)
        elif event.event == "left" and group is not None:
            conn.execute(
                "DELETE FROM directory_members WHERE group_id = ? AND user_id = ?",
                (group, event.user_id),
            )
    return conn.total_changes != before


def users(conn: sqlite3.Connection) -> list[str]:
    return _column(conn, "SELECT user_id FROM directory_users ORDER BY user_id")


def groups(conn: sqlite3.Connection) -> list[str]:
    return _column(conn, "SELECT group_id FROM directory_groups ORDER BY group_id")


def members(conn: sqlite3.Connection, group_id: str) -> list[str]:
    return _column(
        conn,
        "SELECT user_id FROM directory_members WHERE group_id = ? ORDER BY user_id",
        (group_id,),
    )


def groups_of(conn: sqlite3.Connection, user_id: str) -> list[str]:
    return _column(
        conn,
        "SELECT group_id FROM directory_members WHERE user_id = ? ORDER BY group_id",
        (user_id,),
    )


def _column(conn: sqlite3.Connection, sql: str, params: tuple[str, ...] = ()) -> list[str]:
    return [row[0] for row in conn.execute(sql, params).fetchall()]


def recipients_or_refuse(
    conn: sqlite3.Connection, message: SendMessage, me: str, *, refuse_unknown_user: bool
) -> list[str]:
    """The others an own message goes to (the group's members now, or the DM's
    recipient), or SendRefused."""
    if message.group_id is not None:
        group_members = [
            row[0]
            for row in conn.execute(
                "SELECT user_id FROM directory_members WHERE group_id = ?", (message.group_id,)
            )
        ]
        if me not in group_members:
            known = conn.execute(
                "SELECT 1 FROM directory_groups WHERE group_id = ?", (message.group_id,)
            ).fetchone()
            reason = SendRefusal.NOT_A_MEMBER if known else SendRefusal.UNKNOWN_GROUP
            raise SendRefused(reason, message.group_id)
        return [member for member in group_members if member != me]
    recipient = message.recipient_id
    assert recipient is not None
    if refuse_unknown_user:
        # An empty directory says nothing yet (a first start before it was read).
        row = conn.execute(
            """SELECT EXISTS(SELECT 1 FROM directory_users),
                      EXISTS(SELECT 1 FROM directory_users WHERE user_id = ?)""",
            (recipient,),
        ).fetchone()
        if row[0] and not row[1]:
            raise SendRefused(SendRefusal.UNKNOWN_USER, recipient)
    return [recipient]
