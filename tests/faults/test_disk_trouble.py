"""Scenario 8: local disk trouble. The receiver's SQLite cache cannot be written (its
files are made immutable, which binds root too). The client does not ack, tells the
user, and recovers by itself once writing works again; nothing is lost."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.world import GROUP, ChatWorld, Run, wait_drained, wait_for

pytestmark = pytest.mark.timeout(300)

USERS = ["ann", "bob", "cyd"]
COUNT = 20


def _cache_files(database: Path) -> list[Path]:
    # Not the -shm file: it is memory-mapped, and a write fault there is a SIGBUS.
    return [database, database.with_name(database.name + "-wal")]


@contextlib.contextmanager
def unwritable(database: Path) -> Iterator[None]:
    """chattr +i on the cache and its write-ahead log: even root cannot write them."""
    files = [f for f in _cache_files(database) if f.exists()]
    subprocess.run(["chattr", "+i", *map(str, files)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=True)


def _writes_fail(database: Path) -> bool:
    conn = sqlite3.connect(database, timeout=5)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO meta (key, value) VALUES ('probe', 'x')")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.Error:
        return True
    finally:
        conn.close()


FAILURES_WHILE_BROKEN = 3
"""The first failure and two retries of the same deliveries, each told to the user."""


def _store_failures_told(tail: Run) -> int:
    """How often the tail told its user that it could not store what it received."""
    return sum(line.startswith("chat-tui: could not store") for line in tail.errors().splitlines())


def test_unwritable_cache_is_not_acked_reported_and_recovers_by_itself(world: ChatWorld) -> None:
    world.make_group(GROUP, USERS)
    tails = {user: world.tail(user) for user in USERS}
    bob = tails["bob"]
    database = world.database("bob")
    with unwritable(database):
        assert _writes_fail(database), "the cache is still writable: the scenario proves nothing"
        senders: list[Run] = [
            world.sender("ann", group=[GROUP], dm=["bob"], count=COUNT, interval=0.05),
            world.sender("cyd", dm=["bob"], count=COUNT // 2, interval=0.05),
        ]
        wait_drained(world, senders)
        wait_for(lambda: "could not store" in bob.errors(), 30, "bob's tail to report it")
        wait_for(
            lambda: _store_failures_told(bob) >= FAILURES_WHILE_BROKEN,
            30,
            f"bob's tail to fail {FAILURES_WHILE_BROKEN} times while the disk stays broken",
        )
        assert bob.alive, f"bob's tail died:\n{bob.errors()[-3000:]}"
        assert bob.lines() == [], "bob's tail printed messages it could not store"
    # Writing works again: the same tail process catches up by itself.
    wait_for(
        lambda: len(bob.lines()) >= COUNT // 2 + COUNT // 2 + COUNT // 2,
        60,
        "bob's tail to recover",
        0.3,
    )
    assert "stored again" in bob.errors()
    result = world.settle("8 unwritable cache")
    problems = [line for line in bob.errors().splitlines() if line.startswith("chat-tui:")]
    result.notes.append(f"bob's tail told the user: {problems[0]!r} ... {problems[-1]!r}")
    assert result.clean, result.details() + "\n" + world.describe()
    assert result.delivered == result.expected == COUNT // 2 * 2 + COUNT // 2 + COUNT // 2
