"""Retention: every message older than `archive_retention_days` is purged, at start
and then once an hour, by every worker (a purge that finds nothing costs one query).

A database that is down is no reason to stop: the purge waits for the next round."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from chat_tui.archive.database import ArchiveDatabase, ArchiveDatabaseUnavailable

log = logging.getLogger(__name__)

PURGE_INTERVAL = 3600.0


async def purge_once(database: ArchiveDatabase, days: int) -> int:
    """Purge what is older than `days`; how many messages went."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    purged = await database.purge_before(cutoff)
    if purged:
        log.info("retention: purged %d messages sent before %s", purged, cutoff.isoformat())
    return purged


async def keep_purging(
    database: ArchiveDatabase, days: int, interval: float = PURGE_INTERVAL
) -> None:
    """Until cancelled."""
    while True:
        try:
            await purge_once(database, days)
        except ArchiveDatabaseUnavailable as exc:
            log.warning(
                "retention: the database is unavailable, next try in %g s: %s", interval, exc
            )
        except Exception:
            # A purge that fails must not stop the worker: storing matters more.
            log.exception("retention: the purge failed, next try in %g s", interval)
        await asyncio.sleep(interval)
