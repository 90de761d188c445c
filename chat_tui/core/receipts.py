"""Receipt intake: RECEIVE_MESSAGE from the receipts queue moves own messages from
sent to delivered to read, per member."""

from __future__ import annotations

import logging

from chat_tui.backoff import Backoff
from chat_tui.core.acking import ack_all, reject, requeue
from chat_tui.core.batching import Batcher
from chat_tui.core.sink import Sink
from chat_tui.protocol.models import MalformedMessageError, ReceiveMessage, decode
from chat_tui.protocol.names import receipt_key
from chat_tui.store import Store
from chat_tui.transport.consumers import Delivery

log = logging.getLogger(__name__)


class ReceiptIntake:
    def __init__(self, store: Store, sink: Sink) -> None:
        self.store = store
        self.sink = sink
        self.batcher: Batcher[Delivery] = Batcher(200, 0.01)
        self.rejected = 0
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
        receipts: list[ReceiveMessage] = []
        settled: list[Delivery] = []
        for delivery in batch:
            try:
                decoded = decode(delivery.body)
                if not isinstance(decoded, ReceiveMessage):
                    raise MalformedMessageError(f"{decoded.type} in a receipts queue")
                if delivery.routing_key != receipt_key(self.store.me):
                    raise MalformedMessageError(f"receipt routed as {delivery.routing_key!r}")
            except MalformedMessageError as exc:
                self.rejected += 1
                log.warning("dead-lettering an invalid receipt: %s", exc)
                await reject(delivery)
                continue
            receipts.append(decoded)
            settled.append(delivery)
        if not receipts:
            return
        try:
            changes = await self.store.apply_receipts(receipts)
        except Exception as exc:
            self.sink.problem(f"could not store receipts: {exc}")
            await self._hand_back_delay.wait()
            await requeue(settled)
            return
        self._hand_back_delay.reset()
        if changes:
            self.sink.status_changed(changes)
        await ack_all(settled)
