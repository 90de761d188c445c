"""The plain aio-pika consumer every receive metric is compared with.

It has chat-tui's durability and nothing else: a durable queue with the inbox's
arguments, the same prefetch, and a manual ack of each message after it arrives.
"""

from __future__ import annotations

import asyncio
import time

from aio_pika.abc import AbstractIncomingMessage


class AckingConsumer:
    """Acks each delivery; `done` is set once `expected` were acked."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.acked = 0
        self.done = asyncio.Event()
        self.finished_at = 0.0
        self.arrivals: dict[bytes, float] = {}
        self.record_arrivals = False
        self.arrived = asyncio.Event()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        if self.record_arrivals:
            self.arrivals[message.body] = time.perf_counter()
            self.arrived.set()
        self.acked += 1
        if self.acked >= self.expected and not self.done.is_set():
            self.finished_at = time.perf_counter()
            self.done.set()

    async def wait_for(self, body: bytes) -> float:
        """When the delivery with this body was acked (needs `record_arrivals`)."""
        while body not in self.arrivals:
            self.arrived.clear()
            await self.arrived.wait()
        return self.arrivals[body]
