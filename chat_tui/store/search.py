"""Local search: the cache's FTS5 index over message text (schema version 3).

The user's text is plain words. Each word becomes a quoted FTS5 string, so quotes,
NEAR, `*`, `-` and brackets are searched as text and never make the query invalid; a
word with no letter or digit in it matches nothing and is dropped.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from chat_tui.protocol.archive import MAX_SNIPPET_CHARS
from chat_tui.store.messages import COLUMNS, from_row
from chat_tui.store.records import StoredMessage

_SNIPPET_TOKENS = 24


@dataclass(frozen=True)
class LocalHit:
    message: StoredMessage
    snippet: str
    """Plain text around the match."""
    rank: float
    """Higher is better (FTS5's bm25, negated)."""


def match_expression(text: str) -> str | None:
    """An FTS5 query that finds every word of `text`, or None if it has no words."""
    words = [word for word in text.split() if any(ch.isalnum() for ch in word)]
    if not words:
        return None
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def search(
    conn: sqlite3.Connection, text: str, conversation_key: str | None, limit: int
) -> list[LocalHit]:
    """The best `limit` cached messages with every word of `text`, best first."""
    expression = match_expression(text)
    if expression is None:
        return []
    within = "" if conversation_key is None else "AND m.conversation_key = :key"
    rows = conn.execute(
        f"""SELECT {COLUMNS},
               snippet(messages_fts, 0, '', '', '…', {_SNIPPET_TOKENS}) AS snippet,
               bm25(messages_fts) AS score
           FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
           WHERE messages_fts MATCH :match {within}
           ORDER BY score LIMIT :limit""",
        {"match": expression, "key": conversation_key, "limit": limit},
    ).fetchall()
    return [
        LocalHit(from_row(row), str(row["snippet"])[:MAX_SNIPPET_CHARS], -float(row["score"]))
        for row in rows
    ]
