"""Collect deliveries into batches of up to `max_size`.

Batching is natural: a batch is whatever has arrived by the time the previous one is
done, never a timed wait. A lone message goes through at once (latency), and under load
the prefetch fills while a batch is stored, so batches grow by themselves (throughput).
`max_wait` adds an optional short wait for stragglers; the pipelines use 0.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, max_size: int = 100, max_wait: float = 0.0) -> None:
        self.max_size = max_size
        self.max_wait = max_wait
        self._queue: asyncio.Queue[T] = asyncio.Queue()

    def put(self, item: T) -> None:
        self._queue.put_nowait(item)

    def _drain_into(self, batch: list[T]) -> None:
        while len(batch) < self.max_size:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def next_batch(self) -> list[T]:
        """Wait for one item, then take whatever else is already there."""
        batch = [await self._queue.get()]
        self._drain_into(batch)
        # One turn of the loop lets frames already read from the socket become deliveries.
        await asyncio.sleep(0)
        self._drain_into(batch)
        if self.max_wait > 0 and len(batch) < self.max_size:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_size and (remaining := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(remaining):
                        batch.append(await self._queue.get())
                except TimeoutError:
                    break
                self._drain_into(batch)
        return batch
