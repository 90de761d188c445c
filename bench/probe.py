"""What the benchmark watches inside a chat-tui client, without changing it.

- `ProbeSink` is the face: it records when each message was handed to `show`.
- `watch_acks` wraps the inbox pipeline's `settle(settlement)` of one client, which
  returns only after a stored and shown batch is on disk and acked, to count acked
  deliveries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from chat_tui.core.client import ChatClient
from chat_tui.core.receiver import Settlement
from chat_tui.core.records import StatusChange, StoredMessage
from chat_tui.core.sink import Sink
from chat_tui.core.status import ClientStatus


class ProbeSink(Sink):
    """Records when each message reached `show` (by message ID) and counts them; also
    which own messages left the outbox (confirmed, returned or failed)."""

    def __init__(self, record_arrivals: bool = False) -> None:
        self.shown = 0
        self.record_arrivals = record_arrivals
        self.arrivals: dict[str, float] = {}
        self.arrived = asyncio.Event()
        self.problems: list[str] = []
        self.status: ClientStatus | None = None
        self.settled: set[str] = set()
        self.status_arrived = asyncio.Event()

    async def show(self, messages: Sequence[StoredMessage]) -> None:
        now = time.perf_counter()
        self.shown += len(messages)
        if self.record_arrivals:
            for message in messages:
                self.arrivals[message.message_id] = now
            self.arrived.set()

    def status_changed(self, changes: Sequence[StatusChange]) -> None:
        self.settled.update(c.message_id for c in changes if c.status != "queued")
        self.status_arrived.set()

    async def wait_settled(self, message_id: str) -> None:
        """Until the broker confirmed (or refused) an own message.

        Not `ChatClient.wait_sent`: it can miss a confirm that arrives while it reads
        the store (see docs/performance.md)."""
        while message_id not in self.settled:
            self.status_arrived.clear()
            await self.status_arrived.wait()

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def connection_changed(self, status: ClientStatus) -> None:
        self.status = status

    async def wait_for(self, message_id: str) -> float:
        while message_id not in self.arrivals:
            self.arrived.clear()
            await self.arrived.wait()
        return self.arrivals[message_id]


class AckWatch:
    """Counts deliveries of one client's inbox that were stored, shown and acked."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.acked = 0
        self.done = asyncio.Event()
        self.finished_at = 0.0

    def batch_done(self, size: int) -> None:
        self.acked += size
        if self.acked >= self.expected and not self.done.is_set():
            self.finished_at = time.perf_counter()
            self.done.set()


def watch_acks(client: ChatClient, watch: AckWatch) -> None:
    """Hook `watch` into the client's receive pipeline. Call right after `start()`,
    before the client's connect task had a chance to run."""
    pipeline = client.inbox
    assert pipeline is not None, "the client is not started"
    settle = pipeline.settle

    async def settle_and_count(settlement: Settlement) -> None:
        await settle(settlement)
        watch.batch_done(len(settlement.deliveries))

    # An instance attribute shadows the method that the pipeline's settling stage calls.
    pipeline.settle = settle_and_count  # type: ignore[method-assign]
