"""The archive's database: every archived message, its history pages and its search,
in a SQLite file (the default) or in PostgreSQL (what several workers share)."""

from __future__ import annotations

from pathlib import Path

from chat_tui.archive.database.cursor import history_cursor
from chat_tui.archive.database.model import (
    ArchiveDatabase,
    ArchiveDatabaseUnavailable,
    ArchiveHit,
    ConversationRef,
    Readable,
)
from chat_tui.archive.database.postgres import PostgresArchive
from chat_tui.archive.database.sqlite import SqliteArchive

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_archive_database(location: str) -> ArchiveDatabase:
    """'postgresql://...' (or 'postgres://') -> PostgreSQL (asyncpg); anything else is a
    SQLite file path. Call `open()` on the result before using it."""
    if location.startswith(POSTGRES_SCHEMES):
        return PostgresArchive(location)
    return SqliteArchive(Path(location))


__all__ = [
    "ArchiveDatabase",
    "ArchiveDatabaseUnavailable",
    "ArchiveHit",
    "ConversationRef",
    "PostgresArchive",
    "Readable",
    "SqliteArchive",
    "history_cursor",
    "open_archive_database",
]
