"""One SQLite connection on its own thread, so the event loop never blocks on disk.

SQLite calls are blocking; this is the one place chat-tui uses a thread. Work is sent
as whole functions so that a transaction runs on the thread without hopping back.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class StoreError(RuntimeError):
    """The local cache could not be read or written (disk full, read-only, corrupt)."""


def _create_private(path: Path) -> None:
    """The cache holds every direct message: its folder (when we create it) and its file
    are the user's alone. SQLite gives the -wal and -shm files the database's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
        if mode & 0o077:
            os.fchmod(descriptor, mode & 0o700)
    finally:
        os.close(descriptor)


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._connection: sqlite3.Connection | None = None
        self._log_fd: int | None = None

    async def open(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        def _open() -> None:
            _create_private(self.path)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in transaction()).
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.close()
                raise StoreError(f"local cache {self.path}: cannot use a write-ahead log ({mode})")
            # NORMAL: a commit does not sync by itself; `transaction` fsyncs the log after
            # every durable commit instead (what FULL would do), and the others skip it.
            # Switching the pragma per transaction cost two more statements, each a
            # round of the GIL for this thread while the event loop parses deliveries.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
            self._connection = conn
            setup(conn)
            try:
                self._open_log()
            except BaseException:
                self._connection = None
                conn.close()
                raise

        await self.run(lambda _conn: None, _open_first=_open)

    def _open_log(self) -> None:
        """Keep a descriptor of the write-ahead log for `_fsync_log`, and make its
        directory entry durable (SQLite creates the file anew for each session).

        SQLite puts the log beside the database file a symlink points to, so the path is
        resolved first. Setting up has written through the log, so it exists."""
        log_path = Path(f"{os.path.realpath(self.path)}-wal")
        try:
            self._log_fd = os.open(log_path, os.O_RDONLY)
        except FileNotFoundError:
            raise StoreError(f"local cache {self.path}: no write-ahead log at {log_path}") from None
        directory = os.open(log_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def run(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        _open_first: Callable[[], None] | None = None,
    ) -> T:
        return await self.submit(work, _open_first=_open_first)

    def submit(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        _open_first: Callable[[], None] | None = None,
    ) -> asyncio.Future[T]:
        """Queue `work` for the SQLite thread now, behind everything queued before it,
        and return its future: for work the caller need not wait for, but whose place in
        the order matters."""

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

        return asyncio.get_running_loop().run_in_executor(self._executor, _call)

    async def transaction(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        durable: bool = True,
    ) -> T:
        """Run `work` in one write transaction, rolled back if it raises.

        A durable commit fsyncs the write-ahead log before it returns, so it survives a
        power cut. `durable=False` skips that, for bookkeeping whose loss in a power cut
        only repeats some work, or for a caller that syncs later (`sync`, or a queued
        `autocommit(..., sync_after=True)`); any later sync covers it too.
        """

        def _tx(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, read-only) leaves the transaction open.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if durable:
                self._fsync_log()
            return result

        return await self.run(_tx)

    def autocommit(
        self, work: Callable[[sqlite3.Connection], T], *, sync_after: bool = False
    ) -> asyncio.Future[T]:
        """Queue writes that need no atomicity together (a single statement, or hints
        whose partial loss is harmless) without BEGIN and COMMIT, each statement
        committing by itself: two SQLite calls fewer, each a wait for the GIL during a
        backlog. `sync_after` fsyncs the log afterwards, in the same trip to the thread.
        Queued at once, like `submit`."""

        def _write(conn: sqlite3.Connection) -> T:
            result = work(conn)
            if sync_after:
                self._fsync_log()
            return result

        return self.submit(_write)

    async def sync(self) -> None:
        """fsync the log: every commit so far survives a power cut."""
        await self.run(lambda _conn: self._fsync_log())

    def _fsync_log(self) -> None:
        """fsync the write-ahead log, where commits made without a sync live until the
        next checkpoint (which syncs the database file itself).

        The log's descriptor stays open: SQLite keeps the same file (it rewinds it after
        a checkpoint) until its last connection closes, which is ours in `close`."""
        if self._log_fd is None:
            raise StoreError("the cache is closed")
        os.fsync(self._log_fd)

    async def close(self) -> None:
        def _close(conn: sqlite3.Connection) -> None:
            if self._log_fd is not None:
                os.close(self._log_fd)
                self._log_fd = None
            conn.close()
            self._connection = None

        if self._connection is not None:
            await self.run(_close)
        self._executor.shutdown(wait=True)
