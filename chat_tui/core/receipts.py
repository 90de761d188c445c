"""Receipt intake: RECEIVE_MESSAGE from the receipts queue moves own messages from
sent to delivered to read, per member.

Malformed receipts are dead-lettered. A well-formed receipt that cannot count is acked
and ignored: in accounts mode one not published by its `recipient_id`; in any mode one
from someone the message was not sent to (the cache keeps each own message's
recipients), and a later protocol version's message."""

from __future__ import annotations

import logging
from functools import partial

from chat_tui.backoff import Backoff
from chat_tui.core.acking import ack_all, requeue
from chat_tui.core.batch_sorting import sort_batch
from chat_tui.core.batching import Batcher
from chat_tui.core.sender_checks import receipt_recipient_problem, receipt_sender_problem
from chat_tui.core.sink import Sink
from chat_tui.protocol.models import MalformedMessageError, ReceiveMessage, UnknownMessage, decode
from chat_tui.protocol.names import receipt_key
from chat_tui.store import Store
from chat_tui.transport.consumers import Delivery

log = logging.getLogger(__name__)


def validate_receipt(delivery: Delivery, me: str) -> ReceiveMessage | UnknownMessage:
    """A receipt, a later version's message to ignore, or MalformedMessageError."""
    decoded = decode(delivery.body)
    if isinstance(decoded, UnknownMessage):
        return decoded
    if not isinstance(decoded, ReceiveMessage):
        raise MalformedMessageError(f"{decoded.type} in a receipts queue")
    if delivery.routing_key != receipt_key(me):
        raise MalformedMessageError(f"receipt routed as {delivery.routing_key!r}")
    return decoded


class ReceiptIntake:
    def __init__(self, store: Store, sink: Sink, *, verify_senders: bool = False) -> None:
        self.store = store
        self.sink = sink
        self.verify_senders = verify_senders
        """Accounts mode: a receipt counts only if published by its `recipient_id`, and
        one from a non-recipient counts as unverified."""
        self.batcher: Batcher[Delivery] = Batcher(200, 0.01)
        self.rejected = 0
        """Dead-lettered: malformed."""
        self.unverified = 0
        """Acked, not applied: failed the sender checks (accounts mode)."""
        self.unknown_types = 0
        """Acked, not applied: a later protocol version's message type."""
        # Before receipts that could not be stored go back to the broker.
        self._hand_back_delay = Backoff(1.0, 1.0)

    def on_delivery(self, message: Delivery) -> None:
        self.batcher.put(message)

    async def run(self) -> None:
        while True:
            try:
                await self.process(await self.batcher.next_batch())
            except Exception as exc:
                # As in InboxPipeline.run: one bad batch must not end receipt intake.
                log.exception("processing receipts failed")
                self.sink.problem(f"processing receipts failed, they will be redelivered: {exc}")

    async def process(self, batch: list[Delivery]) -> None:
        validate = partial(validate_receipt, me=self.store.me)
        sorted_batch = await sort_batch(batch, validate, self, log, what="receipt")
        receipts: list[ReceiveMessage] = []
        for delivery, receipt in sorted_batch.valid:
            if self.verify_senders and (
                problem := receipt_sender_problem(delivery.user_id, receipt)
            ):
                self._ignore(problem)
                continue
            receipts.append(receipt)
        settled = sorted_batch.settled
        if not settled:
            return
        try:
            applied = await self.store.apply_receipts(receipts) if receipts else None
        except Exception as exc:
            self.sink.problem(f"could not store receipts: {exc}")
            await self._hand_back_delay.wait()
            await requeue(settled)
            return
        self._hand_back_delay.reset()
        if applied is not None:
            for receipt in applied.not_recipients:
                self._not_sent_to(receipt)
            if applied.changes:
                self.sink.status_changed(applied.changes)
        await ack_all(settled)

    def _ignore(self, problem: str) -> None:
        self.unverified += 1
        log.warning("ignoring a receipt: %s", problem)

    def _not_sent_to(self, receipt: ReceiveMessage) -> None:
        """The cache did not count it: its message was not sent to its `recipient_id`."""
        problem = receipt_recipient_problem(receipt)
        if self.verify_senders:
            self._ignore(problem)
        else:
            # Open mode verifies nothing: such a receipt is a mistake, not evidence.
            log.info("not counting a receipt: %s", problem)
