"""An in-memory broker and a `Transport` stand-in, for tests of the core's logic alone.

`MemoryTransport` has the surface of `chat_tui.transport.connection.Transport` that the
core uses: `connect() -> InboxAtConnect`, `drop`, `close`, `publish`, `consume_inbox`,
`consume_receipts`, `consume_directory`, `bind_group`, `unbind_group`, `online`,
`status`, `on_status` and `on_reconnected`. Its deliveries satisfy the core's
`Delivery` protocol.

`MemoryBroker` routes by the names of chat_tui/protocol/names.py, as docs/protocol.md
declares them: a topic exchange NS.messages, the inbox and receipts queues (single
active consumer, dead-lettered to NS.dead-letters on a reject), and the directory
stream, which keeps its entries and is read from the first one. A publish is
confirmed once routed, returned when nothing matches (mandatory), and failed while
the link is down or a nack was asked for. Unacked deliveries go back to the head of
their queue when their channel closes. `cut()` and `restore()` on a transport play
a lost link and aio-pika's reconnect.

Every publish carries the AMQP `user_id` of its link's broker login, as RabbitMQ
enforces it. `MemoryBroker.publish_raw` plays a client other than chat-tui: any body,
any routing key, with the `user_id` of the login it holds, or none.

The real-broker tests stay the proof; this only makes the core's logic quick to test.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from chat_tui.protocol.names import (
    DIRECTORY_BINDING,
    Names,
    group_key,
    receipt_key,
    user_key,
)
from chat_tui.transport.connection import InboxAtConnect, LinkState, LinkStatus
from chat_tui.transport.consumers import DeliveryHandler
from chat_tui.transport.errors import (
    AuthenticationRefused,
    BrokerUnreachable,
    PublishFailed,
    PublishRefused,
    PublishReturned,
)
from chat_tui.transport.publisher import Publishable


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is one word, `#` is zero or more."""

    def match(words: list[str], keys: list[str]) -> bool:
        if not words:
            return not keys
        if words[0] == "#":
            return any(match(words[1:], keys[skip:]) for skip in range(len(keys) + 1))
        if not keys:
            return False
        return (words[0] == "*" or words[0] == keys[0]) and match(words[1:], keys[1:])

    return match(pattern.split("."), routing_key.split("."))


@dataclass(frozen=True)
class StoredMessage:
    """A message as the broker holds it."""

    routing_key: str
    body: bytes
    message_type: str
    amqp_message_id: str
    user_id: str | None = None
    """The AMQP `user_id` property: the publisher's login, or None if it left it out."""


class MemoryChannel:
    """A consumer's channel: delivery tags, unacked deliveries, a prefetch."""

    def __init__(self, broker: MemoryBroker, prefetch: int) -> None:
        self.broker = broker
        self.prefetch = prefetch
        self.is_closed = False
        self.unacked: dict[int, tuple[MemoryQueue, StoredMessage]] = {}
        self._tags = itertools.count(1)

    def next_tag(self) -> int:
        return next(self._tags)

    def settle(self, tag: int, *, multiple: bool, requeue: bool, dead_letter: bool) -> None:
        if self.is_closed:
            # aiormq raises on a channel that is gone; the broker has requeued it.
            raise RuntimeError("channel is closed")
        tags = [t for t in self.unacked if t <= tag] if multiple else [tag]
        if any(t not in self.unacked for t in tags):
            raise RuntimeError(f"unknown delivery tag {tag}: a double settle")
        touched: set[MemoryQueue] = set()
        for t in sorted(tags, reverse=requeue):
            queue, message = self.unacked.pop(t)
            touched.add(queue)
            if requeue:
                queue.ready.appendleft(message)
            elif dead_letter and queue.dead_letters:
                self.broker.dead_letter(message)
        for queue in touched:
            self.broker.pump(queue)

    def close(self) -> None:
        """Close it: its unacked deliveries go back to the head of their queues."""
        if self.is_closed:
            return
        self.is_closed = True
        touched: set[MemoryQueue] = set()
        for tag in sorted(self.unacked, reverse=True):
            queue, message = self.unacked.pop(tag)
            if not queue.stream:
                queue.ready.appendleft(message)
            touched.add(queue)
        for queue in touched:
            self.broker.pump(queue)


class MemoryDelivery:
    """A `Delivery` from the memory broker."""

    __slots__ = ("_channel", "body", "routing_key", "tag", "user_id")

    def __init__(self, channel: MemoryChannel, tag: int, message: StoredMessage) -> None:
        self._channel = channel
        self.tag = tag
        self.body = message.body
        self.routing_key = message.routing_key
        self.user_id = message.user_id

    @property
    def channel_key(self) -> int | None:
        return None if self._channel.is_closed else id(self._channel)

    async def ack_through(self) -> None:
        self._channel.settle(self.tag, multiple=True, requeue=False, dead_letter=False)

    async def reject(self) -> None:
        self._channel.settle(self.tag, multiple=False, requeue=False, dead_letter=True)

    async def requeue(self) -> None:
        self._channel.settle(self.tag, multiple=False, requeue=True, dead_letter=False)


@dataclass(eq=False)
class MemoryConsumer:
    queue: MemoryQueue
    handler: DeliveryHandler
    channel: MemoryChannel
    stream_offset: int = 0


@dataclass(eq=False)
class MemoryQueue:
    name: str
    dead_letters: bool = False
    """Whether a reject dead-letters it (the inbox and receipts queues)."""
    stream: bool = False
    ready: deque[StoredMessage] = field(default_factory=deque)
    """A classic queue's messages waiting for a consumer."""
    entries: list[StoredMessage] = field(default_factory=list)
    """A stream's entries, which consuming does not remove."""
    consumers: list[MemoryConsumer] = field(default_factory=list)


class MemoryBroker:
    """The exchanges and queues of one namespace, in memory."""

    def __init__(self, names: Names) -> None:
        self.names = names
        self.queues: dict[str, MemoryQueue] = {}
        self.bindings: list[tuple[str, str]] = []  # (routing-key pattern, queue name)
        self.reachable = True
        self.refused_users: set[str] = set()
        self.nacks_to_come = 0
        """The next publishes the broker nacks: each raises PublishFailed."""
        self.cancels_to_come = 0
        self.unanswered_consumes: set[str] = set()
        """Queues whose consume the broker never answers (a busy broker: the real
        transport gives up after a timeout, and the connector tries again)."""
        """The next publishes cancelled under their caller, as aio-pika cancels those
        waiting for a confirm when their channel closes."""
        self.refused_keys: set[str] = set()
        """Routing keys the broker refuses to let anyone publish to (a topic permission)."""
        self.declare(names.dead_letters_queue)
        self.declare(names.directory_stream, stream=True)
        self.bind(DIRECTORY_BINDING, names.directory_stream)

    def transport(
        self, user_id: str, *, login: str | None = None, prefetch: int = 1600
    ) -> MemoryTransport:
        """A link for `user_id`, logged in as `login` (None: as `user_id`, an account)."""
        return MemoryTransport(self, user_id, login=login, prefetch=prefetch)

    def publish_raw(
        self,
        routing_key: str,
        body: bytes,
        *,
        user_id: str | None,
        message_type: str = "",
    ) -> bool:
        """Publish as a client that bypasses chat-tui would: any body under any key, with
        `user_id` the login it holds (the broker refuses any other) or None. Returns
        whether anything was routed."""
        return self.route(StoredMessage(routing_key, body, message_type, "", user_id))

    def declare(self, name: str, *, dead_letters: bool = False, stream: bool = False) -> bool:
        """Declare a queue; return whether it was new."""
        if name in self.queues:
            return False
        self.queues[name] = MemoryQueue(name, dead_letters=dead_letters, stream=stream)
        return True

    def bind(self, pattern: str, queue_name: str) -> None:
        if (pattern, queue_name) not in self.bindings:
            self.bindings.append((pattern, queue_name))

    def unbind(self, pattern: str, queue_name: str) -> None:
        if (pattern, queue_name) in self.bindings:
            self.bindings.remove((pattern, queue_name))

    def route(self, message: StoredMessage) -> bool:
        """Put it in every queue bound to its key; False if there is none (a return)."""
        targets = {
            name for pattern, name in self.bindings if topic_matches(pattern, message.routing_key)
        }
        for name in sorted(targets):
            queue = self.queues[name]
            (queue.entries if queue.stream else queue.ready).append(message)
            self.pump(queue)
        return bool(targets)

    def dead_letter(self, message: StoredMessage) -> None:
        queue = self.queues[self.names.dead_letters_queue]
        queue.ready.append(message)
        self.pump(queue)

    def messages_in(self, queue_name: str) -> list[StoredMessage]:
        """What a queue holds now: its ready messages, or a stream's entries."""
        queue = self.queues[queue_name]
        return list(queue.entries if queue.stream else queue.ready)

    def pump(self, queue: MemoryQueue) -> None:
        """Hand ready messages to consumers, within their channels' prefetch."""
        loop = asyncio.get_running_loop()
        live = [c for c in queue.consumers if not c.channel.is_closed]
        if queue.stream:
            for consumer in live:
                channel = consumer.channel
                while (
                    consumer.stream_offset < len(queue.entries)
                    and len(channel.unacked) < channel.prefetch
                ):
                    message = queue.entries[consumer.stream_offset]
                    consumer.stream_offset += 1
                    self._hand(loop, consumer, message)
            return
        # Single active consumer: the first live one gets everything.
        if not live:
            return
        active = live[0]
        while queue.ready and len(active.channel.unacked) < active.channel.prefetch:
            self._hand(loop, active, queue.ready.popleft())

    @staticmethod
    def _hand(
        loop: asyncio.AbstractEventLoop, consumer: MemoryConsumer, message: StoredMessage
    ) -> None:
        channel = consumer.channel
        tag = channel.next_tag()
        channel.unacked[tag] = (consumer.queue, message)
        # Later, as aiormq's task per delivery would: never inside the publisher's call.
        loop.call_soon(consumer.handler, MemoryDelivery(channel, tag, message))


class MemoryTransport:
    """One user's link to a `MemoryBroker`, with the surface of `Transport`."""

    def __init__(
        self,
        broker: MemoryBroker,
        user_id: str,
        *,
        login: str | None = None,
        prefetch: int = 1600,
    ) -> None:
        self.broker = broker
        self.names = broker.names
        self.user_id = user_id
        self.login = user_id if login is None else login
        """The broker login, stamped as `user_id` on every publish."""
        self.prefetch = prefetch
        self.reconnect_interval = 2.0
        self.on_status: Callable[[LinkStatus], None] = lambda status: None
        self.on_reconnected: Callable[[], Awaitable[None]] | None = None
        self.status = LinkStatus(LinkState.OFFLINE)
        self.published: list[StoredMessage] = []
        """Every confirmed publish, in order."""
        self._connected = False
        self._consumers: list[MemoryConsumer] = []

    @property
    def online(self) -> bool:
        return self.status.state is LinkState.ONLINE

    def _set_status(self, status: LinkStatus) -> None:
        self.status = status
        self.on_status(status)

    async def connect(self, connect_timeout: float = 5.0) -> InboxAtConnect:
        self._set_status(LinkStatus(LinkState.CONNECTING))
        await asyncio.sleep(0)
        if not self.broker.reachable:
            raise BrokerUnreachable("cannot reach the memory broker")
        if self.user_id in self.broker.refused_users:
            raise AuthenticationRefused("the memory broker refused the credentials")
        names, me = self.names, self.user_id
        created = self.broker.declare(names.inbox_queue(me), dead_letters=True)
        self.broker.declare(names.receipts_queue(me), dead_letters=True)
        self.broker.bind(user_key(me), names.inbox_queue(me))
        self.broker.bind(receipt_key(me), names.receipts_queue(me))
        inbox = self.broker.queues[names.inbox_queue(me)]
        had_consumer = any(not c.channel.is_closed for c in inbox.consumers)
        self._connected = True
        self._set_status(LinkStatus(LinkState.ONLINE))
        return InboxAtConnect(created=created, had_consumer=had_consumer)

    async def drop(self) -> None:
        self._disconnect()

    async def close(self) -> None:
        self._disconnect()
        self._set_status(LinkStatus(LinkState.OFFLINE))

    def _disconnect(self) -> None:
        self._connected = False
        for consumer in self._consumers:
            consumer.queue.consumers.remove(consumer)
            consumer.channel.close()
        self._consumers.clear()

    # --- a lost link and aio-pika's reconnect -----------------------------------------

    def cut(self, reason: str = "connection reset") -> None:
        """The link dies: channels close (unacked deliveries are requeued), publishes fail."""
        for consumer in self._consumers:
            consumer.channel.close()
        retry = datetime.now(UTC) + timedelta(seconds=self.reconnect_interval)
        self._set_status(LinkStatus(LinkState.RECONNECTING, next_retry_at=retry, error=reason))

    async def restore(self) -> None:
        """The robust connection is back: consumers register again on new channels."""
        for consumer in self._consumers:
            if consumer.channel.is_closed:
                consumer.channel = MemoryChannel(self.broker, consumer.channel.prefetch)
                consumer.stream_offset = 0  # the directory is read from the first entry again
        self._set_status(LinkStatus(LinkState.ONLINE))
        for queue in {consumer.queue for consumer in self._consumers}:
            self.broker.pump(queue)
        if self.on_reconnected is not None:
            await self.on_reconnected()

    # --- publishing ------------------------------------------------------------------

    async def publish(self, out: Publishable) -> None:
        if not self._connected or not self.online:
            raise PublishFailed("not connected")
        await asyncio.sleep(0)  # a confirm takes a round trip
        if not self.online:
            raise PublishFailed("connection trouble: the link died before the confirm")
        if self.broker.cancels_to_come > 0:
            self.broker.cancels_to_come -= 1
            raise asyncio.CancelledError
        if self.broker.nacks_to_come > 0:
            self.broker.nacks_to_come -= 1
            raise PublishFailed("the broker refused it: nack")
        if out.routing_key in self.broker.refused_keys:
            raise PublishRefused(
                f"the broker does not let {self.login!r} publish to {out.routing_key!r}"
            )
        message = StoredMessage(
            out.routing_key, out.body, out.message_type, out.amqp_message_id, self.login
        )
        if not self.broker.route(message):
            raise PublishReturned(f"nobody to route {out.routing_key!r} to")
        self.published.append(message)

    # --- consuming -------------------------------------------------------------------

    async def consume_inbox(self, handler: DeliveryHandler) -> None:
        self._consume(self.names.inbox_queue(self.user_id), handler, self.prefetch)

    async def consume_receipts(self, handler: DeliveryHandler) -> None:
        queue = self.names.receipts_queue(self.user_id)
        if queue in self.broker.unanswered_consumes:
            await asyncio.Event().wait()
        self._consume(queue, handler, self.prefetch)

    async def consume_directory(self, handler: DeliveryHandler) -> None:
        self._consume(self.names.directory_stream, handler, 1000)

    def _consume(self, queue_name: str, handler: DeliveryHandler, prefetch: int) -> None:
        if not self._connected:
            raise RuntimeError("connect() first")
        queue = self.broker.queues[queue_name]
        consumer = MemoryConsumer(queue, handler, MemoryChannel(self.broker, prefetch))
        queue.consumers.append(consumer)
        self._consumers.append(consumer)
        self.broker.pump(queue)

    # --- group bindings --------------------------------------------------------------

    async def bind_group(self, group_id: str) -> None:
        self.broker.bind(group_key(group_id), self.names.inbox_queue(self.user_id))

    async def unbind_group(self, group_id: str) -> None:
        self.broker.unbind(group_key(group_id), self.names.inbox_queue(self.user_id))
