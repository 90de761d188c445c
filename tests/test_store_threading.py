"""Which store work runs on the event loop and which on the SQLite thread.

A small transaction without an fsync runs on the loop when the thread is idle: no hops
on a message's path. Everything else goes to the thread: big batches, fsyncs, work
queued behind other work, a write lock held by another process, and (through SQLite's
automatic checkpoint) checkpoints.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path

import pytest

from chat_tui.core.cache_policy import open_cache
from chat_tui.protocol.models import SendMessage
from chat_tui.store import Store
from chat_tui.store.database import INLINE_RUN, SMALL_BATCH, Database, StoreError

pytestmark = pytest.mark.timeout(60)


def _setup(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body BLOB)")


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    opened = Database(tmp_path / "notes.sqlite3")
    await opened.open(_setup)
    yield opened
    await opened.close()


def writing(body: bytes, threads: list[int]) -> Callable[[sqlite3.Connection], int]:
    """Work that inserts a note and records the thread it ran on."""

    def work(conn: sqlite3.Connection) -> int:
        threads.append(threading.get_ident())
        row = conn.execute("INSERT INTO notes (body) VALUES (?) RETURNING id", (body,))
        return int(row.fetchone()[0])

    return work


def notes(path: Path) -> int:
    with closing(sqlite3.connect(path, timeout=5)) as conn:
        return int(conn.execute("SELECT count(*) FROM notes").fetchone()[0])


LOOP = threading.get_ident


async def test_a_small_commit_without_fsync_runs_on_the_loop(database: Database) -> None:
    threads: list[int] = []
    await database.transaction(writing(b"one", threads), durable=False, small=True)
    assert threads == [LOOP()]
    assert notes(database.path) == 1, "the inline commit is not visible to another connection"


async def test_big_or_durable_work_runs_on_the_thread_and_so_does_every_fsync(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsync_threads: list[int] = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        fsync_threads.append(threading.get_ident())
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    threads: list[int] = []
    await database.transaction(writing(b"big", threads), durable=False, small=False)
    await database.transaction(writing(b"durable", threads), durable=True, small=True)
    await database.sync()
    assert len(threads) == 2 and LOOP() not in threads
    assert len(fsync_threads) == 2 and LOOP() not in fsync_threads


async def test_work_queued_for_the_thread_keeps_its_place_ahead_of_a_small_commit(
    database: Database,
) -> None:
    release = threading.Event()
    order: list[str] = []

    def slow(conn: sqlite3.Connection) -> None:
        release.wait(10)
        order.append("queued first")

    queued = database.submit(slow)
    threads: list[int] = []

    def small(conn: sqlite3.Connection) -> int:
        order.append("small")
        return writing(b"after", threads)(conn)

    committing = asyncio.ensure_future(database.transaction(small, durable=False, small=True))
    await asyncio.sleep(0.05)
    assert not committing.done(), "the small commit overtook work queued before it"
    release.set()
    await queued
    await committing
    assert order == ["queued first", "small"]
    assert threads != [LOOP()]


async def test_a_write_lock_held_by_another_process_is_waited_for_on_the_thread(
    database: Database,
) -> None:
    other = sqlite3.connect(database.path, isolation_level=None, timeout=5)
    try:
        other.execute("BEGIN IMMEDIATE")
        threads: list[int] = []
        committing = asyncio.ensure_future(
            database.transaction(writing(b"waits", threads), durable=False, small=True)
        )
        began = time.monotonic()
        await asyncio.sleep(0.2)
        # The loop ran on time: it did not sit in SQLite's 5 s busy wait.
        assert time.monotonic() - began < 1.0
        assert not committing.done()
        other.execute("ROLLBACK")
        await asyncio.wait_for(committing, 10)
    finally:
        other.close()
    assert threads == [threads[0]] and threads[0] != LOOP()
    # The connection waits for locks on the thread again afterwards.
    assert await database.run(lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0]) == 5000


async def test_inline_commits_never_checkpoint_and_a_run_of_them_ends_on_the_thread(
    database: Database,
) -> None:
    # 40 KB a note: ten pages of the log each, so that INLINE_RUN of them take the log
    # past the 1,000 pages at which SQLite checkpoints it into the database file.
    body = os.urandom(40_000)
    main_file = database.path.stat().st_size
    threads: list[int] = []
    for _ in range(INLINE_RUN):
        await database.transaction(writing(body, threads), durable=False, small=True)
    assert threads == [LOOP()] * INLINE_RUN
    assert database.path.stat().st_size == main_file, "an inline commit checkpointed"
    await database.transaction(writing(body, threads), durable=False, small=True)
    assert threads[-1] != LOOP(), f"commit {INLINE_RUN + 1} in a row ran on the loop"
    assert database.path.stat().st_size > main_file + INLINE_RUN * len(body)
    await database.transaction(writing(b"again", threads), durable=False, small=True)
    assert threads[-1] == LOOP(), "after a commit on the thread, small ones run inline again"


async def test_an_inline_failure_is_a_store_error_and_leaves_nothing_behind(
    database: Database,
) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO notes (body) VALUES ('half')")
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(StoreError, match="no_such_table"):
        await database.transaction(half_then_fail, durable=False, small=True)

    class Refused(Exception):
        pass

    def refuse(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO notes (body) VALUES ('half')")
        raise Refused

    with pytest.raises(Refused):
        await database.transaction(refuse, durable=False, small=True)
    assert notes(database.path) == 0
    threads: list[int] = []
    await database.transaction(writing(b"fine", threads), durable=False, small=True)
    assert threads == [LOOP()] and notes(database.path) == 1


def _group_messages(count: int) -> list[SendMessage]:
    return [
        SendMessage(message_id=uuid.uuid4(), sender_id="carol", group_id="team", content="hi")
        for _ in range(count)
    ]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_cache(tmp_path / "bob.sqlite3", "bob")
    yield opened
    await opened.close()


def statement_threads(store: Store) -> list[tuple[int, str]]:
    """Every statement the store's connection runs from now on, with its thread."""
    ran: list[tuple[int, str]] = []
    connection = store._db._connection
    assert connection is not None
    connection.set_trace_callback(lambda sql: ran.append((threading.get_ident(), sql)))
    return ran


def inserts_into(table: str, ran: list[tuple[int, str]]) -> set[int]:
    return {thread for thread, sql in ran if sql.lstrip().startswith(f"INSERT INTO {table}")}


async def test_the_store_keeps_a_few_messages_on_the_loop_and_a_batch_on_the_thread(
    store: Store,
) -> None:
    ran = statement_threads(store)
    await store.store_incoming(_group_messages(1), durable=False)
    assert inserts_into("messages", ran) == {LOOP()}
    ran.clear()
    await store.store_incoming(_group_messages(SMALL_BATCH), durable=False)
    assert inserts_into("messages", ran) == {LOOP()}
    ran.clear()
    await store.store_incoming(_group_messages(SMALL_BATCH + 1), durable=False)
    assert LOOP() not in inserts_into("messages", ran)
    ran.clear()
    # The receiver's durable store (no later sync to lean on) syncs on the thread.
    await store.store_incoming(_group_messages(1), durable=True)
    assert LOOP() not in inserts_into("messages", ran)


async def test_a_commit_on_the_loop_waits_for_the_caller_of_an_earlier_one_to_hear_of_it(
    database: Database,
) -> None:
    # The outbox publishes rows in the order their `send` calls hear of their commits.
    # Here the thread has finished a commit whose caller is not woken yet: a small
    # commit now must not run on the loop and be heard of first.
    heard: list[str] = []

    async def commit(name: str, *, small: bool) -> None:
        await database.transaction(writing(name.encode(), []), durable=False, small=small)
        heard.append(name)

    first = asyncio.ensure_future(commit("on the thread", small=False))
    await asyncio.sleep(0)  # its job is queued
    time.sleep(0.2)  # noqa: ASYNC251 (holding the loop on purpose while the thread commits)
    second = asyncio.ensure_future(commit("small", small=True))
    await asyncio.gather(first, second)
    assert heard == ["on the thread", "small"]


async def test_a_slow_fsync_holds_neither_the_loop_nor_the_order(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A busy or failing disk: each fsync takes 0.3 s. It runs on the thread, and a small
    # commit arriving meanwhile waits behind it there rather than on the loop.
    fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.3)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    threads: list[int] = []
    syncing = asyncio.ensure_future(database.sync())
    await asyncio.sleep(0)  # the sync is queued
    committing = asyncio.ensure_future(
        database.transaction(writing(b"meanwhile", threads), durable=False, small=True)
    )
    longest_tick = 0.0
    while not (syncing.done() and committing.done()):
        before = time.monotonic()
        await asyncio.sleep(0.01)
        longest_tick = max(longest_tick, time.monotonic() - before)
    await syncing
    await committing
    assert longest_tick < 0.15, f"the loop stood still for {longest_tick * 1000:.0f} ms"
    assert threads != [LOOP()]
