"""Consuming a queue one layer below aio-pika's consumer API.

aio-pika wraps every delivery in an `IncomingMessage` (a dozen attribute writes through
a checked `__setattr__`) and runs the callback in a task of its own, on top of the task
aiormq already runs for it. During a backlog that was about a quarter of the event
loop's time per message (docs/performance.md, "Backlog drain"), and the loop is what a
drain is bound by. So the client's consumers register with aiormq directly and get a
`Delivery`: the body, the routing key, the publisher's `user_id` and the three ways to
settle it. The core is
typed against the `Delivery` protocol, so a test can hand it deliveries of its own.

aio-pika still owns everything around the consumer: the robust channel and its queue
are restored after a reconnect (QoS, declaration, bindings), and the channel's
`reopen_callbacks` tell a `QueueConsumer` to register again on the new channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

import aiormq.abc
from aio_pika.abc import AbstractRobustChannel, AbstractRobustQueue
from aiormq import spec

from chat_tui.backoff import Backoff

log = logging.getLogger(__name__)


class Delivery(Protocol):
    """One delivery from a queue, as the core sees it; settle it with exactly one of
    `ack_through`, `reject` and `requeue`."""

    @property
    def body(self) -> bytes: ...
    @property
    def routing_key(self) -> str: ...
    @property
    def user_id(self) -> str | None:
        """The AMQP `user_id` property, or None. The broker refuses a publish whose
        `user_id` is not the publisher's login, so on a deployment with accounts it
        names the account that published it; a publisher may leave it out."""
        ...

    @property
    def channel_key(self) -> int | None:
        """Which channel it came on, or None once that channel is closed: its tag means
        nothing on the channel that replaced it, and the broker has requeued it."""
        ...

    async def ack_through(self) -> None:
        """Ack this delivery and every earlier one of its channel (`multiple`)."""
        ...

    async def reject(self) -> None:
        """Reject without requeue: the queue dead-letters it if it has a DLX."""
        ...

    async def requeue(self) -> None: ...


class AmqpDelivery:
    """A `Delivery` straight from aiormq."""

    __slots__ = ("_channel", "body", "routing_key", "tag", "user_id")

    def __init__(self, message: aiormq.abc.DeliveredMessage) -> None:
        delivery = message.delivery
        assert isinstance(delivery, spec.Basic.Deliver)
        self.body: bytes = message.body
        self.routing_key: str = delivery.routing_key or ""
        self.user_id: str | None = message.header.properties.user_id
        self.tag: int = delivery.delivery_tag or 0
        self._channel = message.channel

    @property
    def channel_key(self) -> int | None:
        channel = self._channel
        return None if channel.is_closed else id(channel)

    async def ack_through(self) -> None:
        await self._channel.basic_ack(self.tag, multiple=True)

    async def reject(self) -> None:
        await self._channel.basic_reject(self.tag, requeue=False)

    async def requeue(self) -> None:
        await self._channel.basic_reject(self.tag, requeue=True)


DeliveryHandler = Callable[[Delivery], None]
"""Called once per delivery, on the event loop; it must not block (hand over and return)."""


REGISTER_TIMEOUT = 10.0
RETRY_FIRST = 0.5
RETRY_MAX = 10.0


class QueueConsumer:
    """Consumes one robust queue with a `DeliveryHandler`, across reconnects."""

    def __init__(
        self,
        queue: AbstractRobustQueue,
        handler: DeliveryHandler,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        channel = queue.channel
        assert isinstance(channel, AbstractRobustChannel)
        self._channel: AbstractRobustChannel = channel
        self._queue_name = queue.name
        self._handler = handler
        self._arguments = arguments
        self._consumer_tag: str | None = None
        self._registered_on: aiormq.abc.AbstractChannel | None = None
        self._registering: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Consume now (a failure reaches the caller's connect loop), and again each
        time aio-pika reopens the channel or the broker cancels the consumer."""
        await self._register()
        self._channel.reopen_callbacks.add(self._on_reopen)

    def close(self) -> None:
        self._channel.reopen_callbacks.discard(self._on_reopen)
        if self._registering is not None:
            self._registering.cancel()

    async def cancel(self, timeout: float = REGISTER_TIMEOUT) -> None:
        """Stop consuming for good, keeping the channel: no more deliveries come, and
        those already here can still be settled (a worker that stops finishes its batch)."""
        self.close()
        channel, self._registered_on = self._registered_on, None
        if channel is None or self._consumer_tag is None or channel.is_closed:
            return
        channel.on_consumer_cancel_callbacks.discard(self._on_cancelled)
        await channel.basic_cancel(self._consumer_tag, timeout=timeout)

    async def _register(self) -> None:
        underlay = await self._channel.get_underlay_channel()
        if underlay is self._registered_on:
            return  # already consuming on this channel (a cancel clears this)
        underlay.on_consumer_cancel_callbacks.add(self._on_cancelled)
        result = await underlay.basic_consume(
            self._queue_name,
            self._deliver,
            no_ack=False,
            arguments=self._arguments,
            timeout=REGISTER_TIMEOUT,
        )
        self._consumer_tag = result.consumer_tag
        self._registered_on = underlay

    async def _deliver(self, message: aiormq.abc.DeliveredMessage) -> None:
        # aiormq runs this in a task per delivery already; hand over without another.
        self._handler(AmqpDelivery(message))

    def _on_reopen(self, _channel: Any) -> None:
        # aio-pika reopened the channel (after a reconnect or a channel error) and
        # restored the queue; the consumer is ours to restore. Not inside this callback:
        # aio-pika ignores what its callbacks raise, and a consume that fails with a
        # channel error there would leave the channel closed until the next reconnect.
        self._register_soon(wait_first=False)

    def _on_cancelled(self, frame: spec.Basic.Cancel) -> None:
        # Synchronous on purpose: aiormq awaits this inside the channel's frame reader,
        # so awaiting a consume's reply here would wait for itself, forever.
        if frame.consumer_tag != self._consumer_tag:
            return
        # The broker dropped the consumer (the queue was deleted, its node went down).
        # Consuming again either works, or fails on a missing queue, which closes the
        # channel; aio-pika then restores it, declaring the queue again, and reopens it.
        log.warning("the broker cancelled the consumer of %s; consuming again", self._queue_name)
        self._registered_on = None
        self._register_soon(wait_first=True)

    def _register_soon(self, *, wait_first: bool) -> None:
        if self._registering is None or self._registering.done():
            self._registering = asyncio.get_running_loop().create_task(
                self._register_until_done(wait_first=wait_first)
            )

    async def _register_until_done(self, *, wait_first: bool) -> None:
        backoff = Backoff(RETRY_FIRST, RETRY_MAX)
        if wait_first:
            await backoff.wait()
        while True:
            try:
                await self._register()
                return
            except Exception as exc:  # a closed channel, a channel error, a timeout
                log.warning(
                    "could not consume %s, retrying in %g s: %r",
                    self._queue_name,
                    backoff.current,
                    exc,
                )
                await backoff.wait()
