"""The main screen's syncs with the cache: save what was read, then reload the counts.

One sync runs at a time, and a burst of requests (a backlog shown batch after batch,
or read as it scrolls past) becomes one sync per `STORE_SYNC_INTERVAL`, the last
request always followed by a sync. docs/architecture.md ("The app counts a batch in
memory") says why. No Textual here: the screen passes the callables and how to run
the background loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

STORE_SYNC_INTERVAL = 0.2
"""While batches arrive, save reads and re-read the counts at most this often (seconds)."""

Spawn = Callable[[Coroutine[Any, Any, None]], object]


class ReadSync:
    """`save_reads` hands the cache the unsaved read marks; `reload` reads the counts
    back and draws them. `spawn` runs the coalescing loop in the background (the
    screen's worker, so that it ends with the screen)."""

    def __init__(
        self,
        save_reads: Callable[[], Awaitable[None]],
        reload: Callable[[], Awaitable[None]],
        spawn: Spawn,
        *,
        interval: float = STORE_SYNC_INTERVAL,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._save_reads = save_reads
        self._reload = reload
        self._spawn = spawn
        self._interval = interval
        self._sleep = sleep
        self._one_at_a_time = asyncio.Lock()
        self._wanted = False
        self._looping = False

    async def save_reads(self) -> None:
        """Save the unsaved read marks now (before the client stops, say)."""
        async with self._one_at_a_time:
            await self._save_reads()

    async def sync_now(self) -> None:
        """Save the read marks, then reload the counts."""
        await self.save_reads()
        async with self._one_at_a_time:
            await self._reload()

    def sync_soon(self) -> None:
        """Sync now, or when the last sync is an interval old."""
        self._wanted = True
        if not self._looping:
            self._looping = True
            self._spawn(self._sync_while_wanted())

    async def _sync_while_wanted(self) -> None:
        try:
            while self._wanted:
                self._wanted = False
                await self.sync_now()
                await self._sleep(self._interval)
        finally:
            self._looping = False
