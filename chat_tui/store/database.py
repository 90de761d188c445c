"""One SQLite connection on its own thread, so the event loop never blocks on disk.

SQLite calls are blocking; this is the one place chat-tui uses a thread. Work is sent
as whole functions so that a transaction runs on the thread without hopping back.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class StoreError(RuntimeError):
    """The local cache could not be read or written (disk full, read-only, corrupt)."""


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._connection: sqlite3.Connection | None = None

    async def open(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        def _open() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in transaction()).
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a message is acked to the broker only once it is on disk, so a power
            # cut after the ack must not lose it.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
            self._connection = conn
            setup(conn)

        await self.run(lambda _conn: None, _open_first=_open)

    async def run(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        _open_first: Callable[[], None] | None = None,
    ) -> T:
        def _call() -> T:
            try:
                if _open_first is not None:
                    _open_first()
                if self._connection is None:
                    raise StoreError("the cache is closed")
                return work(self._connection)
            except (sqlite3.Error, OSError) as exc:
                if _open_first is not None and self._connection is not None:
                    # Set-up failed half way (e.g. a cache from a newer chat-tui).
                    self._connection.close()
                    self._connection = None
                raise StoreError(f"local cache {self.path}: {exc}") from exc

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _call)

    async def transaction(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        durable: bool = True,
        sync_after: bool = False,
    ) -> T:
        """Run `work` in one write transaction, rolled back if it raises.

        `durable=False` skips the fsync at commit, for bookkeeping whose loss in a power
        cut only repeats some work; the next durable commit syncs it to disk as well.
        `sync_after` fsyncs the log after the commit, in the same trip to the thread.
        """

        def _tx(conn: sqlite3.Connection) -> T:
            if not durable:
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, read-only) leaves the transaction open.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                if not durable:
                    conn.execute("PRAGMA synchronous=FULL")
            if sync_after:
                self._fsync_log()
            return result

        return await self.run(_tx)

    def _fsync_log(self) -> None:
        """fsync the write-ahead log, where commits made without a sync live until the
        next checkpoint (which syncs the database file itself)."""
        for path in (Path(f"{self.path}-wal"), self.path):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return

    async def sync_to_disk(self) -> None:
        """Make every commit so far survive a power cut."""
        await self.run(lambda _conn: self._fsync_log())

    async def close(self) -> None:
        def _close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._connection = None

        if self._connection is not None:
            await self.run(_close)
        self._executor.shutdown(wait=True)
