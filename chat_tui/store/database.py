"""One SQLite connection, used on its own thread, and on the event loop for small work.

SQLite calls are blocking; this is the one place chat-tui uses a thread. Work is sent
as whole functions so that a transaction runs on the thread without hopping back.

A hop to the thread and back costs 0.15 - 0.25 ms each way here, several times what
committing one message costs, and a message's path from send to screen had four. So a
small transaction without an fsync (`transaction(..., small=True, durable=False)`) runs
on the event loop itself when nothing waits for the thread; everything else goes to the
thread, which keeps big batches, every fsync, every checkpoint and every wait for another
process's lock off the loop (`runs_inline` is the rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from chat_tui.sqlite_files import create_private, use_write_ahead_log

T = TypeVar("T")

INLINE_RUN = 100
"""Inline commits in a row at most; then one goes to the thread. Inline commits never
checkpoint the write-ahead log (a checkpoint syncs the database file); SQLite's own
automatic checkpoint, on the thread's next commit, then finds at most this many of them
beyond its threshold."""
BUSY_TIMEOUT_MS = 5000
"""How long the thread waits for another process's write lock (`chat-tui send` beside
the app, say) before the write fails."""
WAL_AUTOCHECKPOINT = 1000
"""SQLite's default: its thread's commits checkpoint the log once it holds 1,000 pages."""
SMALL_BATCH = 4
"""Messages in a transaction small enough for the event loop (`small=True`). Inline,
the loop pays the whole transaction: storing 4 received messages took 0.67 ms of its
CPU, against 0.26 ms when the thread stores them, and 16 took 1.2 ms; a lone message is
what the hops hurt, and a backlog brings batches of hundreds (docs/performance.md)."""


class StoreError(RuntimeError):
    """The local cache could not be read or written (disk full, read-only, corrupt)."""


class _WriteLockTaken(Exception):
    """Another connection (another chat-tui process) is writing, or the thread is still
    using ours: do the work on the thread, behind it."""


def _commit_or_roll_back(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """The body of a transaction begun by the caller."""
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (disk full, read-only) leaves the transaction open.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._connection: sqlite3.Connection | None = None
        self._log_fd: int | None = None
        # Jobs sent to the thread, and those whose results are back on the loop: equal
        # when nothing waits for the thread, and no caller has yet to hear from it (an
        # inline commit must not overtake one whose caller has not seen it commit).
        self._jobs_sent = 0
        self._jobs_returned = 0
        self._connection_lock = threading.Lock()
        """Held by whoever uses the connection, the thread or the loop: a job the loop
        gave up waiting for (cancelled) may still be running."""
        self._inline_in_a_row = 0

    async def open(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        def _open() -> None:
            create_private(self.path)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in transaction()).
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            try:
                mode = use_write_ahead_log(conn, BUSY_TIMEOUT_MS / 1000)
            except sqlite3.Error as exc:
                conn.close()
                raise StoreError(f"local cache {self.path}: {exc}") from exc
            if mode.lower() != "wal":
                conn.close()
                raise StoreError(f"local cache {self.path}: cannot use a write-ahead log ({mode})")
            # NORMAL: a commit does not sync by itself; `transaction` fsyncs the log after
            # every durable commit instead (what FULL would do), and the others skip it.
            # Switching the pragma per transaction cost two more statements, each a
            # round of the GIL for this thread while the event loop parses deliveries.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
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
            with self._connection_lock:
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

        future = asyncio.get_running_loop().run_in_executor(self._executor, _call)
        self._jobs_sent += 1
        # Added before the caller awaits it: runs just ahead of the caller's wake-up.
        future.add_done_callback(self._job_returned)
        return future

    def _job_returned(self, _job: asyncio.Future[T]) -> None:
        self._jobs_returned += 1

    def runs_inline(self, *, small: bool, durable: bool) -> bool:
        """Whether a transaction may run on the event loop now: it is small (one message,
        a few at most: `SMALL_BATCH`), it needs no fsync (a slow disk would freeze the
        loop for the length of the sync), nothing is queued for the thread or on its way
        back from it (callers hear of commits in the order they were made: the outbox
        publishes what `send` hands it in that order), and fewer than `INLINE_RUN`
        inline commits came in a row. A transaction that then finds the write lock taken
        by another process goes to the thread after all (`transaction`), where waiting
        for it blocks nobody."""
        return (
            small
            and not durable
            and self._connection is not None
            and self._jobs_returned == self._jobs_sent
            and self._inline_in_a_row < INLINE_RUN
        )

    async def transaction(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        durable: bool = True,
        small: bool = False,
    ) -> T:
        """Run `work` in one write transaction, rolled back if it raises.

        A durable commit fsyncs the write-ahead log before it returns, so it survives a
        power cut. `durable=False` skips that, for bookkeeping whose loss in a power cut
        only repeats some work, or for a caller that syncs later (`sync`, or a queued
        `autocommit(..., sync_after=True)`); any later sync covers it too.

        `small`: the caller vouches that `work` is about one message (`SMALL_BATCH` at
        most), so that it may run on the event loop (`runs_inline`)."""

        if self.runs_inline(small=small, durable=durable):
            with contextlib.suppress(_WriteLockTaken):
                return self._inline(work)

        def _tx(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            result = _commit_or_roll_back(conn, work)
            if durable:
                self._fsync_log()
            return result

        self._inline_in_a_row = 0
        return await self.run(_tx)

    def _inline(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in a transaction here, on the event loop; raises _WriteLockTaken,
        having done nothing, when another process holds the write lock.

        For its length the connection neither waits for a lock (busy_timeout 0: waiting
        would freeze the loop; the thread waits instead) nor checkpoints (a checkpoint
        writes and syncs the database file). Four statements more, a few microseconds
        on the loop, instead of two hops."""
        conn = self._connection
        assert conn is not None  # runs_inline checked it
        if not self._connection_lock.acquire(blocking=False):
            raise _WriteLockTaken  # a cancelled job still running: wait behind it
        try:
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            try:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                        raise _WriteLockTaken from exc
                    raise
                result = _commit_or_roll_back(conn, work)
            finally:
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"local cache {self.path}: {exc}") from exc
        finally:
            self._connection_lock.release()
        self._inline_in_a_row += 1
        return result

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
