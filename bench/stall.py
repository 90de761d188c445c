"""The longest stall of an event loop: how long a UI sharing it would freeze.

A ticker task sleeps `TICK` seconds at a time and records how much later than that it
woke up. For the longest gap it also records how much CPU the loop's thread used in it:
a gap with little CPU is time the thread waited, for the GIL (another Python thread,
such as SQLite's) or for a core (other processes on a busy machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType

TICK = 0.005


class StallMeter:
    """Use as `async with StallMeter() as meter: ...`, then read `longest`,
    `longest_cpu` and `percentile(99)` (seconds)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.longest_cpu = 0.0
        self.gaps: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu_before = loop.time(), time.thread_time()
            await asyncio.sleep(TICK)
            gap = max(0.0, loop.time() - before - TICK)
            self.gaps.append(gap)
            if gap > self.longest:
                self.longest = gap
                self.longest_cpu = time.thread_time() - cpu_before

    def percentile(self, percent: float) -> float:
        if not self.gaps:
            return 0.0
        ordered = sorted(self.gaps)
        return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]

    async def __aenter__(self) -> StallMeter:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
