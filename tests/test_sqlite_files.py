"""The switch to WAL, when several processes open a new database file at once (privacy
is tested where the cache and the archive open their files)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from chat_tui.sqlite_files import use_write_ahead_log


def _held_by_a_reader(path: Path) -> sqlite3.Connection:
    """A connection in the middle of a read: no one can switch the journal mode."""
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.execute("CREATE TABLE t (x)")
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()
    return reader


def test_the_switch_to_wal_is_tried_again_while_the_file_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    reader = _held_by_a_reader(path)
    # timeout=0: SQLite answers busy at once, as it does to one of two connections that
    # open a new file together (each holds a shared lock, and waiting would deadlock).
    opener = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        opener.execute("PRAGMA journal_mode=WAL")
    threading.Timer(0.2, reader.execute, ("COMMIT",)).start()
    assert use_write_ahead_log(opener, timeout_s=5) == "wal"
    opener.close()
    reader.close()


def test_the_switch_to_wal_gives_up_after_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    reader = _held_by_a_reader(path)
    opener = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_write_ahead_log(opener, timeout_s=0.1)
    opener.close()
    reader.close()


def _open_together(path: Path, openers: int) -> list[str]:
    start = threading.Barrier(openers)
    modes: list[str] = []

    def open_it() -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        start.wait()
        modes.append(use_write_ahead_log(conn, timeout_s=5))
        conn.close()

    threads = [threading.Thread(target=open_it) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return modes


def test_three_openers_of_one_new_file_all_get_wal(tmp_path: Path) -> None:
    # A plain PRAGMA failed in about one trial of six here: 30 trials catch it.
    for trial in range(30):
        modes = _open_together(tmp_path / f"new-{trial}.sqlite3", 3)
        assert modes == ["wal"] * 3, f"trial {trial}"
