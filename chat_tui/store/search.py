"""Local search: the cache's FTS5 index over message text (schema version 3).

The user's text is plain words: runs of letters and digits, each a quoted FTS5 string
(which then holds no quote of its own), all required. Quotes, NEAR, `*`, `-`, brackets
and AND/OR/NOT are text, and punctuation only separates words, so no query is invalid;
one without a word finds nothing.
"""

from __future__ import annotations

import re
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


_WORD = re.compile(r"[^\W_]+")
"""A run of letters and digits: how FTS5's unicode61 tokenizer splits text (and how the
archive splits a query, so that both find the same)."""


def match_expression(text: str) -> str | None:
    """An FTS5 query that finds every word of `text`, or None if it has no words."""
    words = _WORD.findall(text)
    if not words:
        return None
    return " AND ".join(f'"{word}"' for word in words)


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
