"""The cache schema and its migrations, versioned with PRAGMA user_version."""

from __future__ import annotations

import sqlite3

# Each entry migrates from version i to i+1; append, never edit a released one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE conversations (
        conversation_key TEXT PRIMARY KEY,       -- "group:<id>" or "dm:<user>"
        unread_count     INTEGER NOT NULL DEFAULT 0,
        last_read_seq    INTEGER NOT NULL DEFAULT 0,
        last_seq         INTEGER NOT NULL DEFAULT 0,
        mentioned        INTEGER NOT NULL DEFAULT 0,
        last_activity    TEXT
    );

    CREATE TABLE messages (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id       TEXT NOT NULL UNIQUE,
        conversation_key TEXT NOT NULL REFERENCES conversations(conversation_key),
        sender_id        TEXT NOT NULL,
        content          TEXT NOT NULL,
        sent_at          TEXT NOT NULL,
        stored_at        TEXT NOT NULL,
        outgoing         INTEGER NOT NULL,
        status           TEXT NOT NULL,
        error            TEXT,
        recipient_count  INTEGER NOT NULL DEFAULT 0,
        shown            INTEGER NOT NULL DEFAULT 0  -- the sink has shown it (see mark_shown)
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_key, seq);

    -- Cumulative receipts per member: everything of ours in the conversation up to
    -- delivered_seq / read_seq has reached / been read by member_id.
    CREATE TABLE receipt_marks (
        conversation_key TEXT NOT NULL,
        member_id        TEXT NOT NULL,
        delivered_seq    INTEGER NOT NULL DEFAULT 0,
        read_seq         INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (conversation_key, member_id)
    );
    -- Every receipt as it came, so that "read by bob at 10:02" can be answered.
    CREATE TABLE receipt_log (
        conversation_key TEXT NOT NULL,
        member_id        TEXT NOT NULL,
        status           TEXT NOT NULL,
        up_to_seq        INTEGER NOT NULL,
        at               TEXT NOT NULL
    );
    CREATE INDEX receipt_log_by_member ON receipt_log(conversation_key, member_id, status);

    CREATE TABLE outbox (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        kind             TEXT NOT NULL,            -- message | receipt | directory
        routing_key      TEXT NOT NULL,
        message_type     TEXT NOT NULL,
        amqp_message_id  TEXT NOT NULL,
        body             BLOB NOT NULL,
        coalesce_key     TEXT UNIQUE,              -- a newer receipt replaces an older one
        attempts         INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        created_at       TEXT NOT NULL
    );

    CREATE TABLE directory_users (
        user_id       TEXT PRIMARY KEY,
        registered_at TEXT NOT NULL
    );
    CREATE TABLE directory_groups (
        group_id   TEXT PRIMARY KEY,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE directory_members (
        group_id  TEXT NOT NULL,
        user_id   TEXT NOT NULL,
        joined_at TEXT NOT NULL,
        PRIMARY KEY (group_id, user_id)
    );

    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # Who each own message was sent to, written when it is queued, so that only their
    # receipts count for it: the group's members change, and groups are public, so a
    # later joiner could otherwise mark it read, and a member who left would stop
    # counting. Own messages from before this migration have no rows here and
    # recipients_recorded = 0: for them a receipt counts from a current member of the
    # group, as it did before.
    """
    ALTER TABLE messages ADD COLUMN recipients_recorded INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE message_recipients (
        message_seq INTEGER NOT NULL,   -- messages.seq of an own message
        member_id   TEXT NOT NULL,
        PRIMARY KEY (message_seq, member_id)
    ) WITHOUT ROWID;
    """,
    # History from the archive (store/backfill.py) and local search. `from_archive`
    # marks a message put in by a backfill: never unread, never a receipt. The FTS5
    # index reads its text from `messages` (external content) and the triggers keep it
    # in step inside the transaction that writes the message.
    """
    ALTER TABLE messages ADD COLUMN from_archive INTEGER NOT NULL DEFAULT 0;

    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='seq',
        tokenize='unicode61 remove_diacritics 2'
    );
    INSERT INTO messages_fts (rowid, content) SELECT seq, content FROM messages;

    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, content) VALUES (new.seq, new.content);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
            VALUES ('delete', old.seq, old.content);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
            VALUES ('delete', old.seq, old.content);
        INSERT INTO messages_fts (rowid, content) VALUES (new.seq, new.content);
    END;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the file up to SCHEMA_VERSION; refuse a file from a newer chat-tui."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"cache schema version {version} is newer than this chat-tui ({SCHEMA_VERSION})"
        )
    for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def statements(script: str) -> list[str]:
    """The statements of `script`, whole: a trigger's body holds semicolons of its own.
    (`executescript` would commit the migration's transaction half way.)"""
    found: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        found.append(pending.strip())
    return found
