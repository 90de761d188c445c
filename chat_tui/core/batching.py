"""Collect deliveries into batches of up to `max_size`.

Batching is natural: a batch is whatever has arrived by the time the previous one is
done, never a timed wait. A lone message goes through at once (latency), and under load
the prefetch fills while a batch is stored, so batches grow by themselves (throughput).
`max_wait` adds an optional short wait for stragglers; the inbox uses 0.

`put` runs once per delivery, so it is a deque append and, only when the consumer is
parked, one future result: an asyncio.Queue cost several times that per item.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, max_size: int = 100, max_wait: float = 0.0) -> None:
        self.max_size = max_size
        self.max_wait = max_wait
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        """Items waiting for a batch."""
        return len(self._items)

    def put(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait_for_items(self) -> None:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _take_into(self, batch: list[T], size: int) -> None:
        items = self._items
        while items and len(batch) < size:
            batch.append(items.popleft())

    async def next_batch(self, limit: int | None = None) -> list[T]:
        """Wait for one item, then take whatever else is already there, at most
        `max_size` (and at most `limit`, which must be at least 1)."""
        size = self.max_size if limit is None else max(1, min(limit, self.max_size))
        await self._wait_for_items()
        batch: list[T] = []
        self._take_into(batch, size)
        # One turn of the loop lets frames already read from the socket become deliveries.
        await asyncio.sleep(0)
        self._take_into(batch, size)
        if self.max_wait > 0 and len(batch) < size:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.max_wait
            while len(batch) < size and (remaining := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(remaining):
                        await self._wait_for_items()
                except TimeoutError:
                    break
                self._take_into(batch, size)
        return batch
