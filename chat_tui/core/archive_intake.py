"""The archive's intake: batch -> validate -> store in the archive's database -> ack.

The inbox pipeline's rules (core/receiver.py), for a store shared by competing workers:
a delivery is acked only after the database committed it, so a worker killed anywhere
before that leaves it with the broker, which hands it to another worker; the database
keeps one copy per message_id, so a redelivery is not stored twice. Invalid bodies, and
in accounts mode messages that do not come from their `sender_id`, are rejected
without requeue: NS.archive dead-letters them to NS.dead. A database that fails
(down, restarting) never dead-letters a valid message: the batch goes back to the
broker after a pause, and the pause grows while the failures go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

from chat_tui.backoff import Backoff
from chat_tui.core.acking import ack_all, requeue
from chat_tui.core.batch_sorting import UnverifiedSenderError, sort_batch
from chat_tui.core.batching import Batcher
from chat_tui.core.sender_checks import chat_sender_problem
from chat_tui.protocol.models import MalformedMessageError, SendMessage, UnknownMessage, decode
from chat_tui.protocol.names import group_key, user_key
from chat_tui.transport.consumers import Delivery

log = logging.getLogger(__name__)

ARCHIVE_BATCH_SIZE = 500
"""Messages per database transaction at most: a commit costs about as much as a few
hundred rows, and the prefetch (1,000) lets the next batch arrive while one commits."""

StoreBatch = Callable[[Sequence[SendMessage]], Awaitable[int]]
"""Stores messages in one committed transaction, one copy per message_id; returns how
many were new. Raises when the database cannot take them now."""


@dataclass
class IntakeCounters:
    stored: int = 0
    duplicates: int = 0
    """Already in the archive: a redelivery, or a copy another worker stored."""
    rejected: int = 0
    """Dead-lettered: malformed, or (accounts mode) not from its `sender_id`."""
    unverified: int = 0
    unknown_types: int = 0
    """Acked and ignored: a later protocol version's message type."""
    handed_back: int = 0
    """Batches given back to the broker because the database failed."""


def validate_archived(delivery: Delivery, *, verify_senders: bool) -> SendMessage | UnknownMessage:
    """A chat message to archive, a later version's message to ignore, or
    MalformedMessageError. The routing key must agree with the body, as in an inbox: a
    group message under its group's key, a DM under its recipient's."""
    decoded = decode(delivery.body)
    if isinstance(decoded, UnknownMessage):
        return decoded
    if not isinstance(decoded, SendMessage):
        raise MalformedMessageError(f"{decoded.type} does not belong in the archive")
    key = delivery.routing_key
    expected = (
        group_key(decoded.group_id)
        if decoded.group_id is not None
        else user_key(decoded.recipient_id or "")
    )
    if key != expected:
        raise MalformedMessageError(f"a message for {expected!r} routed as {key!r}")
    if verify_senders and (problem := chat_sender_problem(delivery.user_id, decoded)):
        raise UnverifiedSenderError(problem)
    return decoded


class ArchiveIntake:
    """Consumes NS.archive for one worker: one batch at a time, committed, then acked."""

    def __init__(
        self,
        store: StoreBatch,
        *,
        verify_senders: bool = False,
        batch_size: int = ARCHIVE_BATCH_SIZE,
    ) -> None:
        self.store = store
        self.verify_senders = verify_senders
        self.batcher: Batcher[Delivery] = Batcher(batch_size)
        self.counters = IntakeCounters()
        self.failing = False
        """The last batch could not be stored (the database is down)."""
        self._hand_back_delay = Backoff.stepping(0.5, 1.0, 2.0, 5.0, 10.0)
        self._settled = asyncio.Event()
        """Set while every delivery handed over has been settled (or handed back)."""
        self._settled.set()

    def on_delivery(self, delivery: Delivery) -> None:
        """The consumer callback: only hands over."""
        self.batcher.put(delivery)
        self._settled.clear()

    async def run(self) -> None:
        """Until cancelled; what `finish` waits for is taken before it is."""
        while True:
            batch = await self.batcher.next_batch()
            try:
                await self.take(batch)
            except Exception:
                # The loop outlives any one batch (fault scenario 3 of the inbox);
                # unsettled deliveries come back from the broker.
                log.exception("archiving a batch failed; the broker redelivers it")
            finally:
                if not self.batcher:
                    self._settled.set()

    async def finish(self, timeout: float) -> bool:
        """After the consumer is cancelled: wait until the batch in progress, and what
        the prefetch had already brought, are committed and acked (or handed back).
        Handing a prefetch back instead would make every stop of a worker a redelivery
        of up to a thousand messages. False if that took longer than `timeout`: what is
        left stays unacked, and the broker redelivers it (the database keeps one copy
        of whatever it committed)."""
        try:
            async with asyncio.timeout(timeout):
                await self._settled.wait()
        except TimeoutError:
            return False
        return True

    async def take(self, batch: list[Delivery]) -> None:
        """Dead-letter what is invalid, store the rest in one transaction, then ack."""
        validate = partial(validate_archived, verify_senders=self.verify_senders)
        sorted_batch = await sort_batch(batch, validate, self.counters, log)
        settled = sorted_batch.settled
        if sorted_batch.valid:
            valid = sorted_batch.messages
            try:
                new = await self.store(valid)
            except Exception as exc:
                await self._hand_back(settled, exc)
                return
            self.counters.stored += new
            self.counters.duplicates += len(valid) - new
            if self.failing:
                self.failing = False
                self._hand_back_delay.reset()
                log.warning("the archive's database takes messages again")
        await ack_all(settled)

    async def _hand_back(self, deliveries: list[Delivery], exc: Exception) -> None:
        self.counters.handed_back += 1
        self.failing = True
        log.error(
            "could not store %d messages (%s); handing them back in %g s",
            len(deliveries),
            exc,
            self._hand_back_delay.current,
        )
        await self._hand_back_delay.wait()
        await requeue(deliveries)
