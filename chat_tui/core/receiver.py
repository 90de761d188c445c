"""The receive pipeline: batch -> validate -> store -> sink -> ack.

A delivery is acked only after it is in the cache and the sink has shown it, so a
crash anywhere before that leaves it in the broker. Invalid bodies, and in accounts mode
messages that do not come from their `sender_id`, are rejected without requeue, which
dead-letters them; they never stop the pipeline. A later protocol version's message is
acked with its batch and ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from chat_tui.backoff import Backoff
from chat_tui.core.acking import ack_all, requeue
from chat_tui.core.batch_sorting import UnverifiedSenderError, sort_batch
from chat_tui.core.batching import Batcher
from chat_tui.core.sender_checks import chat_sender_problem
from chat_tui.core.sink import Sink
from chat_tui.protocol.models import MalformedMessageError, SendMessage, UnknownMessage, decode
from chat_tui.protocol.names import group_key, user_key
from chat_tui.store import Store
from chat_tui.transport.consumers import Delivery

log = logging.getLogger(__name__)

BATCH_SIZE = 400
"""Deliveries per batch at most. Each batch costs a fixed handful of SQLite calls, an
fsync and an ack; 400 drained a 30,000-message backlog about 20% faster than 100 did
(docs/performance.md). A lone message still goes through at once."""


@dataclass
class ReceiveCounters:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    """Dead-lettered: malformed, or (accounts mode) not from its `sender_id`."""
    unverified: int = 0
    """Of those rejected, how many failed the sender check alone."""
    unknown_types: int = 0
    """Acked and ignored: a later protocol version's message type."""
    failures: int = 0


def validate_delivery(
    message: Delivery, me: str, *, verify_senders: bool = False
) -> SendMessage | UnknownMessage:
    """A chat message, a later version's message to ignore, or MalformedMessageError.
    The routing key must agree with the body, so a message cannot claim a conversation
    it was not routed through; with `verify_senders` (accounts mode), the publisher's
    `user_id` must be its `sender_id`."""
    decoded = decode(message.body)
    if isinstance(decoded, UnknownMessage):
        return decoded
    if not isinstance(decoded, SendMessage):
        raise MalformedMessageError(f"{decoded.type} does not belong in an inbox")
    key = message.routing_key
    if decoded.group_id is not None and key != group_key(decoded.group_id):
        raise MalformedMessageError(f"group message routed as {key!r}")
    if decoded.recipient_id is not None and key != user_key(me):
        raise MalformedMessageError(f"direct message routed as {key!r}")
    if decoded.recipient_id is not None and decoded.recipient_id != me:
        raise MalformedMessageError(f"direct message for {decoded.recipient_id!r}")
    if verify_senders and (problem := chat_sender_problem(message.user_id, decoded)):
        raise UnverifiedSenderError(problem)
    return decoded


@dataclass
class Settlement:
    """A batch that is stored and shown, and waits for its fsync and its ack."""

    deliveries: list[Delivery]
    synced: asyncio.Future[None]
    """Writing the batch's `shown` marks and then the fsync, queued on the SQLite thread
    as soon as the batch was shown: ahead of the next batch's store, which must see the
    marks, and in one trip."""


class InboxPipeline:
    """Two stages, one batch apart: while batch N waits for its fsync and its ack, batch
    N+1 is validated, stored and shown. A drain is then bound by the slower stage, not by
    their sum: the SQLite thread syncs one batch while the event loop validates the next.

    Order still holds: the one SQLite thread runs work in the order it was sent, so
    batch N's `shown` marks and fsync (queued as soon as it is shown) come before batch
    N+1's store; batches settle in order, so a batch that fails is handed back before a
    later batch's `ack(multiple)` could cover its delivery tags."""

    def __init__(
        self,
        store: Store,
        sink: Sink,
        *,
        send_delivered: bool = True,
        verify_senders: bool = False,
        on_stored: Callable[[], None] = lambda: None,
        on_first_delivery: Callable[[], None] = lambda: None,
        batch_size: int = BATCH_SIZE,
        batch_wait: float = 0.0,
    ) -> None:
        self.store = store
        self.sink = sink
        self.send_delivered = send_delivered
        self.verify_senders = verify_senders
        """Accounts mode: a message must be published by its `sender_id`."""
        self.on_stored = on_stored
        self.on_first_delivery = on_first_delivery
        self.batcher: Batcher[Delivery] = Batcher(batch_size, batch_wait)
        self.counters = ReceiveCounters()
        self._seen_any = False
        # Before a failed batch goes back to the broker: the steps it always had.
        self._hand_back_delay = Backoff.stepping(0.5, 1.0, 2.0, 5.0, 10.0)
        self._failing = False
        self._show_budget: int | None = None
        self._budget_left = asyncio.Event()
        self._budget_left.set()
        # One batch may wait for the settling stage while it settles another.
        self._to_settle: asyncio.Queue[Settlement] = asyncio.Queue(maxsize=1)

    def show_at_most(self, count: int) -> None:
        """Show at most `count` more messages, then take no more deliveries; those
        left go back to the broker when the connection closes (`tail --count`)."""
        self._show_budget = max(0, count)
        self._update_budget()

    def _update_budget(self) -> None:
        if self._show_budget == 0:
            self._budget_left.clear()
        else:
            self._budget_left.set()

    def on_delivery(self, message: Delivery) -> None:
        """The consumer callback: only hands over, never blocks the channel."""
        # Into the batch first: a delivery that a raising callback kept out of it would
        # still be covered by a later ack(multiple), unstored.
        self.batcher.put(message)
        if not self._seen_any:
            self._seen_any = True
            self.on_first_delivery()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as stages:
            stages.create_task(self._settle_loop())
            await self._receive_loop()

    async def _receive_loop(self) -> None:
        while True:
            await self._budget_left.wait()
            batch = await self.batcher.next_batch(self._show_budget)
            try:
                settlement = await self.receive(batch)
            except Exception as exc:
                # The loop must outlive any one batch: if it ended, the consumer would
                # stay registered with nobody processing, and the inbox would stall
                # (fault scenario 3). Unsettled deliveries come back from the broker.
                log.exception("receiving a batch failed")
                self.sink.problem(f"receiving messages failed, they will be redelivered: {exc}")
                continue
            if settlement is not None:
                await self._to_settle.put(settlement)

    async def _settle_loop(self) -> None:
        while True:
            settlement = await self._to_settle.get()
            try:
                await self.settle(settlement)
            except Exception as exc:
                log.exception("settling a batch failed")
                self.sink.problem(f"receiving messages failed, they will be redelivered: {exc}")

    async def receive(self, batch: list[Delivery]) -> Settlement | None:
        """Stage one: dead-letter invalid deliveries, store the rest without the fsync,
        and show them. None if nothing is left to settle."""
        validate = partial(validate_delivery, me=self.store.me, verify_senders=self.verify_senders)
        sorted_batch = await sort_batch(batch, validate, self.counters, log)
        deliveries = sorted_batch.settled
        if not sorted_batch.valid:
            return self._settle_ignored(deliveries)
        try:
            # Committed without the fsync: a process that dies after this loses nothing,
            # the commit is in the OS and the broker still holds the unacked deliveries.
            result = await self.store.store_incoming(
                sorted_batch.messages,
                send_delivered=self.send_delivered,
                durable=False,
            )
            self.counters.stored += len(result.new_messages)
            self.counters.duplicates += result.duplicates
            if result.new_messages:
                self.on_stored()
            if result.to_show:
                await self.sink.show(result.to_show)
        except Exception as exc:  # StoreError, or anything the face's sink raised
            await self._hand_back(deliveries, f"could not store incoming messages: {exc}")
            return None
        if self._show_budget is not None:
            self._show_budget = max(0, self._show_budget - len(result.to_show))
            self._update_budget()
        synced = self.store.mark_shown([m.seq for m in result.to_show], then_sync=True)
        return Settlement(deliveries, synced)

    def _settle_ignored(self, ignored: list[Delivery]) -> Settlement | None:
        """A batch with nothing to store: its ignored deliveries still settle in turn."""
        if not ignored:
            return None
        nothing_to_sync: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        nothing_to_sync.set_result(None)
        return Settlement(ignored, nothing_to_sync)

    async def settle(self, settlement: Settlement) -> None:
        """Stage two: wait for the batch's fsync (and shown marks), then ack it with
        `multiple`."""
        try:
            # Shielded: a client stopping now still writes what it has queued.
            await asyncio.shield(settlement.synced)
        except Exception as exc:
            await self._hand_back(
                settlement.deliveries, f"could not save incoming messages to disk: {exc}"
            )
            return
        await ack_all(settlement.deliveries)
        if self._failing:
            self._failing = False
            self._hand_back_delay.reset()
            self.sink.problem("incoming messages are being stored again")

    async def _hand_back(self, deliveries: list[Delivery], error: str) -> None:
        """Not acked: after a pause, hand them back; the broker redelivers them."""
        self.counters.failures += 1
        self._failing = True
        text = f"{error}. Retrying in {self._hand_back_delay.current:g} s."
        log.error(text)
        self.sink.problem(text)
        await self._hand_back_delay.wait()
        await requeue(deliveries)
