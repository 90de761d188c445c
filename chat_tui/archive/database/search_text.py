"""User search text made safe for each backend, and the plain-text snippet of a hit.

A query is plain words: quotes, NEAR, `*`, `-`, brackets and AND/OR/NOT are not syntax
but text, and punctuation only separates words. A query with no word in it finds
nothing; it is never an error."""

from __future__ import annotations

import re

from chat_tui.protocol.archive import MAX_SNIPPET_CHARS

_WORD = re.compile(r"[^\W_]+")
"""A run of letters and digits: how FTS5's unicode61 tokenizer splits text."""
_SPACE = re.compile(r"\s+")
SNIPPET_CHARS = 200
"""How long a snippet aims to be; well under the protocol's MAX_SNIPPET_CHARS."""
_ELLIPSIS = "…"


def search_words(query: str) -> list[str]:
    """The query's words, in order, each once (ignoring case)."""
    seen: set[str] = set()
    words: list[str] = []
    for word in _WORD.findall(query):
        folded = word.casefold()
        if folded not in seen:
            seen.add(folded)
            words.append(word)
    return words


def fts5_match(words: list[str]) -> str:
    """An FTS5 MATCH expression that finds every word: each one a quoted string (its
    quotes doubled), joined by AND, so that nothing in it is read as syntax."""
    return " AND ".join('"' + word.replace('"', '""') + '"' for word in words)


def postgres_text(query: str) -> str:
    """The text for `plainto_tsquery`, which reads no operators at all; PostgreSQL's
    text cannot hold U+0000, so it goes."""
    return query.replace("\x00", " ")


def snippet(content: str, words: list[str]) -> str:
    """Plain text around the first place any of `words` occurs (the start when none
    does, as when the match ignored an accent), cut at word boundaries, with an
    ellipsis where text was left out, and never over MAX_SNIPPET_CHARS."""
    text = _SPACE.sub(" ", content).strip()
    if len(text) <= SNIPPET_CHARS:
        return text
    start = 0
    if words:
        pattern = "|".join(re.escape(word) for word in words)
        found = re.search(rf"(?<![^\W_])(?:{pattern})(?![^\W_])", text, re.IGNORECASE)
        if found is not None:
            # A little context before the match, the rest after it.
            start = max(0, found.start() - SNIPPET_CHARS // 4)
    end = min(len(text), start + SNIPPET_CHARS)
    start = max(0, end - SNIPPET_CHARS)
    if start > 0:
        space = text.find(" ", start, start + 20)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", end - 20, end)
        end = space if space > start else end
    piece = text[start:end].strip()
    result = (_ELLIPSIS if start > 0 else "") + piece + (_ELLIPSIS if end < len(text) else "")
    return result[:MAX_SNIPPET_CHARS]
