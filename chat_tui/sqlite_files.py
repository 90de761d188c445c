"""SQLite files that hold chat messages: who may read them, and how they are opened.

It sits beside config.py because two layers open such files: the client's cache
(store) and the archive's SQLite database (a face).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

WAL_SWITCH_PAUSE_S = 0.01


def create_private(path: Path) -> None:
    """Create `path` (and its folder, when we create that) readable by its owner only;
    tighten an existing file that others may read. SQLite gives the -wal and -shm files
    the database's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
        if mode & 0o077:
            os.fchmod(descriptor, mode & 0o700)
    finally:
        os.close(descriptor)


def use_write_ahead_log(conn: sqlite3.Connection, timeout_s: float) -> str:
    """Switch `conn`'s file to WAL and return the journal mode SQLite reports.

    Switching needs the file to itself for a moment, and SQLite answers "database is
    locked" at once, without its busy handler, when another connection is opening the
    same new file (archive workers started together, or two of a user's processes).
    Another try a moment later finds the file in WAL already; so this tries until
    `timeout_s` has passed. It blocks: call it on the database's thread."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(WAL_SWITCH_PAUSE_S)
