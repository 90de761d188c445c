"""The receive pipeline: batch -> validate -> store -> sink -> ack.

A delivery is acked only after it is in the cache and the sink has shown it, so a
crash anywhere before that leaves it in the broker. Invalid bodies are rejected
without requeue, which dead-letters them; they never stop the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aio_pika.abc import AbstractIncomingMessage

from chat_tui.core.acking import ack_all, reject, requeue
from chat_tui.core.batching import Batcher
from chat_tui.core.sink import Sink
from chat_tui.protocol.models import MalformedMessageError, SendMessage, decode
from chat_tui.protocol.names import group_key, user_key
from chat_tui.store.cache import Store

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class ReceiveCounters:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: int = 0


def validate_delivery(message: AbstractIncomingMessage, me: str) -> SendMessage:
    """A chat message, or MalformedMessageError. The routing key must agree with the body,
    so a message cannot claim a conversation it was not routed through."""
    decoded = decode(message.body)
    if not isinstance(decoded, SendMessage):
        raise MalformedMessageError(f"{decoded.type} does not belong in an inbox")
    key = message.routing_key
    if decoded.group_id is not None and key != group_key(decoded.group_id):
        raise MalformedMessageError(f"group message routed as {key!r}")
    if decoded.recipient_id is not None and key != user_key(me):
        raise MalformedMessageError(f"direct message routed as {key!r}")
    if decoded.recipient_id is not None and decoded.recipient_id != me:
        raise MalformedMessageError(f"direct message for {decoded.recipient_id!r}")
    return decoded


class InboxPipeline:
    def __init__(
        self,
        store: Store,
        sink: Sink,
        *,
        send_delivered: bool = True,
        on_stored: Callable[[], None] = lambda: None,
        on_first_delivery: Callable[[], None] = lambda: None,
        batch_size: int = 100,
        batch_wait: float = 0.0,
    ) -> None:
        self.store = store
        self.sink = sink
        self.send_delivered = send_delivered
        self.on_stored = on_stored
        self.on_first_delivery = on_first_delivery
        self.batcher: Batcher[AbstractIncomingMessage] = Batcher(batch_size, batch_wait)
        self.counters = ReceiveCounters()
        self._seen_any = False
        self._failures_in_a_row = 0

    def limit_next_batches(self, size: int) -> None:
        """Take at most `size` deliveries per batch (the CLI's `tail --count`)."""
        self.batcher.max_size = max(1, size)

    async def on_delivery(self, message: AbstractIncomingMessage) -> None:
        """The aio-pika consumer callback: only hands over, never blocks the channel."""
        if not self._seen_any:
            self._seen_any = True
            self.on_first_delivery()
        self.batcher.put(message)

    async def run(self) -> None:
        while True:
            batch = await self.batcher.next_batch()
            try:
                await self.process(batch)
            except Exception as exc:
                # The loop must outlive any one batch: if it ended, the consumer would
                # stay registered with nobody processing, and the inbox would stall
                # (fault scenario 3). Unsettled deliveries come back from the broker.
                log.exception("receiving a batch failed")
                self.sink.problem(f"receiving messages failed, they will be redelivered: {exc}")

    async def process(self, batch: list[AbstractIncomingMessage]) -> None:
        valid: list[tuple[AbstractIncomingMessage, SendMessage]] = []
        for delivery in batch:
            try:
                valid.append((delivery, validate_delivery(delivery, self.store.me)))
            except MalformedMessageError as exc:
                self.counters.rejected += 1
                log.warning("dead-lettering an invalid delivery: %s", exc)
                await reject(delivery)
        if not valid:
            return
        deliveries = [delivery for delivery, _ in valid]
        try:
            await self._store_and_show([message for _, message in valid])
        except Exception as exc:  # StoreError, or anything the face's sink raised
            self.counters.failures += 1
            self._failures_in_a_row += 1
            delay = RETRY_DELAYS[min(self._failures_in_a_row, len(RETRY_DELAYS)) - 1]
            text = f"could not store incoming messages: {exc}. Retrying in {delay:g} s."
            log.error(text)
            self.sink.problem(text)
            # Not acked: after a pause, hand them back; the broker redelivers them.
            await asyncio.sleep(delay)
            await requeue(deliveries)
            return
        await ack_all(deliveries)
        if self._failures_in_a_row:
            self._failures_in_a_row = 0
            self.sink.problem("incoming messages are being stored again")

    async def _store_and_show(self, messages: list[SendMessage]) -> None:
        # Commit without the fsync, show, then fsync before the ack: the user sees the
        # batch one disk sync sooner, and nothing is acked before it is on disk. A process
        # that dies in between loses nothing: the commit is in the OS, and the broker
        # still holds the unacked deliveries.
        result = await self.store.store_incoming(
            messages, send_delivered=self.send_delivered, durable=False
        )
        self.counters.stored += len(result.new_messages)
        self.counters.duplicates += result.duplicates
        if result.new_messages:
            self.on_stored()
        if result.to_show:
            await self.sink.show(result.to_show)
        await self.store.mark_shown([m.seq for m in result.to_show], then_sync=True)
