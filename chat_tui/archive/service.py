"""`chat-tui archive`: one archive worker, until Ctrl+C or SIGTERM.

Run as many as you like, on one machine or several sharing a PostgreSQL `archive_db`:
they are competing consumers of NS.archive and NS.archive.requests. A worker started
before its database or its broker waits for them; a refusal of either ends it with what
to do. Stopping is clean: the messages already received are committed and acked
(or left unacked, for another worker), and the requests in progress are answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from chat_tui.archive.answers import ArchiveAnswers
from chat_tui.archive.database import (
    ArchiveDatabase,
    ArchiveDatabaseUnavailable,
    open_archive_database,
)
from chat_tui.archive.retention import keep_purging
from chat_tui.backoff import Backoff
from chat_tui.config import Settings, redact
from chat_tui.core.archive_worker import ArchiveWorker
from chat_tui.core.errors import ChatError

log = logging.getLogger(__name__)


def is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


async def open_database(location: str) -> ArchiveDatabase:
    """Open the archive's database, waiting for a PostgreSQL that is not up yet."""
    if not is_postgres(location):
        try:
            Path(location).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ChatError(f"archive_db: cannot make the folder of {location}: {exc}") from None
    backoff = Backoff(0.5, 10.0)
    while True:
        database = open_archive_database(location)
        try:
            await database.open()
            return database
        except ArchiveDatabaseUnavailable as exc:
            log.warning(
                "the archive's database %s is unavailable, next try in %g s: %s",
                redact(location),
                backoff.current,
                exc,
            )
        except (OSError, ValueError) as exc:
            raise ChatError(f"archive_db: cannot open {redact(location)}: {exc}") from None
        with contextlib.suppress(Exception):
            await database.close()
        await backoff.wait()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """One worker until `stop` is set; raises ChatError if the broker refuses it."""
    opening = asyncio.create_task(open_database(settings.archive_database))
    if not await _unless_stopped(opening, stop):
        return
    database = opening.result()
    try:
        answers = ArchiveAnswers(database)
        worker = ArchiveWorker(settings, database.store, answers.answer)
        if not await _unless_stopped(asyncio.create_task(worker.start()), stop):
            await worker.stop()
            return
        mode = "accounts" if worker.accounts_mode else "open"
        print(
            f"chat-tui archive: namespace {settings.namespace!r} ({mode} mode), "
            f"database {redact(settings.archive_database)}; Ctrl+C stops",
            file=sys.stderr,
            flush=True,
        )
        waits: set[asyncio.Task[object]] = {
            asyncio.create_task(stop.wait()),
            asyncio.create_task(worker.wait_refused()),
        }
        if settings.archive_retention_days is not None:
            waits.add(asyncio.create_task(keep_purging(database, settings.archive_retention_days)))
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
            await worker.stop()
        for task in done:
            result = task.result()
            if isinstance(result, str):
                raise ChatError(result)  # the broker's refusal, with what to do
    finally:
        await database.close()


async def _unless_stopped(task: asyncio.Task[object], stop: asyncio.Event) -> bool:
    """Let `task` finish (it may wait long: for a database or a broker that is not up),
    and raise what it raised; False, with `task` cancelled, if `stop` came first."""
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if task.done():
        task.result()  # ArchiveRefused, ChatError: said to the user
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """The `chat-tui archive` command."""
    if not getattr(args, "verbose", False):
        # A service's operator needs its warnings (a database down, a batch handed
        # back) without --verbose, which adds every step.
        logging.getLogger().setLevel(logging.WARNING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await serve(settings, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0
