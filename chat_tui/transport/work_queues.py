"""The archive's broker link: its two work queues, the directory stream, and replies.

A worker is one of any number of competing consumers on NS.archive (every chat
message, to store) and NS.archive.requests (history and search requests, to answer on
direct reply-to through the default exchange). It follows NS.directory as clients do,
to know who may read what.

The connection rules are the client's (transport/connection.py), through the same
`dialling.py`: the URLs of `amqp_url` in order, the first that answers, and after a loss
the next, round the list; TLS with a CA file, `no_verify_ssl` only on purpose, and a
refusal is a `BrokerRefused` that says what to do (`ArchiveRefusals`), never retried.
In accounts mode (the login is `NS.archive`, permissions.archive_login) the archive
configures nothing: `chat-tui admin init` declared its queues, which it only looks up;
in open mode it declares them from `protocol/queues.py`'s `archive_topology`, with the
deployment's `queue_type`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aio_pika
import aiormq.abc
from aio_pika.abc import (
    AbstractChannel,
    AbstractQueue,
    AbstractRobustConnection,
    AbstractRobustQueue,
)
from aio_pika.exceptions import AMQPError
from aiormq.exceptions import ChannelClosed
from pamqp.common import FieldTable
from pydantic import SecretStr

from chat_tui.config import redact
from chat_tui.protocol.models import APP_ID, CONTENT_TYPE
from chat_tui.protocol.names import Names
from chat_tui.protocol.queues import QueueType, archive_topology
from chat_tui.transport.consumers import AmqpDelivery, DeliveryHandler, QueueConsumer
from chat_tui.transport.dialling import (
    on_first_answering,
    open_on_node,
    setup_failure,
    watch_for_refusal,
)
from chat_tui.transport.errors import (
    BrokerRefused,
    PublishFailed,
    described,
)
from chat_tui.transport.nodes import BrokerNodes
from chat_tui.transport.refusals import ArchiveRefusals
from chat_tui.transport.topology import declare_directory, declare_shared

log = logging.getLogger(__name__)

REQUESTS_PREFETCH = 16
"""Requests answered at once by one worker; each is one database query."""


class RequestDelivery(Protocol):
    """A request from NS.archive.requests: what to answer it with, and where."""

    @property
    def body(self) -> bytes: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def reply_to(self) -> str | None: ...
    @property
    def correlation_id(self) -> str | None: ...

    async def ack(self) -> None:
        """Ack this request alone: requests are answered concurrently, out of order."""
        ...


RequestHandler = Callable[[RequestDelivery], None]


class AmqpRequest(AmqpDelivery):
    __slots__ = ("correlation_id", "reply_to")

    def __init__(self, message: aiormq.abc.DeliveredMessage) -> None:
        super().__init__(message)
        properties = message.header.properties
        self.reply_to: str | None = properties.reply_to
        self.correlation_id: str | None = properties.correlation_id

    async def ack(self) -> None:
        await self._channel.basic_ack(self.tag, multiple=False)


class RequestConsumer(QueueConsumer):
    """A `QueueConsumer` whose deliveries carry their reply address."""

    def __init__(self, queue: AbstractRobustQueue, handler: RequestHandler) -> None:
        super().__init__(queue, lambda delivery: None)
        self._request_handler = handler

    async def _deliver(self, message: aiormq.abc.DeliveredMessage) -> None:
        self._request_handler(AmqpRequest(message))


def _table(arguments: dict[str, Any]) -> FieldTable:
    table: FieldTable = dict(arguments)
    return table


class WorkQueues:
    """One robust connection: NS.archive and NS.archive.requests on a channel each
    (each acks its own delivery tags), the directory on a third, replies on a fourth
    with confirms."""

    def __init__(
        self,
        urls: Sequence[str],
        names: Names,
        *,
        password: SecretStr | None = None,
        accounts_mode: bool = False,
        queue_type: QueueType = "classic",
        tls_ca_file: Path | None = None,
        tls_insecure: bool = False,
        heartbeat: int = 10,
        reconnect_interval: float = 2.0,
        confirm_timeout: float = 10.0,
        prefetch: int = 1000,
    ) -> None:
        self.nodes = BrokerNodes(
            urls, password=password, tls_ca_file=tls_ca_file, tls_insecure=tls_insecure
        )
        self.names = names
        self.accounts_mode = accounts_mode
        self.queue_type: QueueType = queue_type
        self._refusals = ArchiveRefusals(
            self.nodes, names, accounts_mode=accounts_mode, queue_type=queue_type
        )
        self.heartbeat = heartbeat
        self.reconnect_interval = reconnect_interval
        self.confirm_timeout = confirm_timeout
        self.prefetch = prefetch
        self.refused: asyncio.Future[str] | None = None
        """Resolved with the refusal's text when the broker refuses us after connecting."""
        self._connection: AbstractRobustConnection | None = None
        # Strong references: the robust connection restores only channels that live.
        self._archive: AbstractQueue | None = None
        self._requests: AbstractQueue | None = None
        self._directory: AbstractQueue | None = None
        self._replies: AbstractChannel | None = None
        self._consumers: list[QueueConsumer] = []
        self._closing = False
        self._probe: asyncio.Task[None] | None = None
        self._refusing: asyncio.Task[None] | None = None
        """Held: the loop keeps only weak references to tasks."""

    async def connect(self, timeout: float = 5.0) -> None:
        """Connect to the first node that answers, and declare (open mode) or look up
        (accounts mode) the archive's queues. Raises `BrokerRefused` (what to do; every
        node would say the same) or `BrokerUnreachable` (none answered: retry)."""
        self.refused = asyncio.get_running_loop().create_future()
        await on_first_answering(self.nodes, lambda: self._connect_to_node(timeout))

    @property
    def url(self) -> str:
        """The node the link is on, or tries next, without the password."""
        return self.nodes.url

    @property
    def login(self) -> str:
        return self.nodes.login

    async def _connect_to_node(self, timeout: float) -> None:
        self._connection, _ = await open_on_node(
            self.nodes,
            self._refusals,
            self._declare,
            on_lost=self._on_lost,
            on_restored=self._on_restored,
            connection_name=f"chat-tui:archive:{self.login}",
            heartbeat=self.heartbeat,
            reconnect_interval=self.reconnect_interval,
            timeout=timeout,
        )

    async def _declare(self, connection: AbstractRobustConnection) -> None:
        topology = archive_topology(self.names, self.queue_type)
        archive, requests = (spec.name for spec in topology.queues)
        passive = self.accounts_mode
        setup = await connection.channel()
        messages = None if passive else await declare_shared(setup, self.names, self.queue_type)
        queues: dict[str, AbstractQueue] = {}
        for spec, prefetch in zip(topology.queues, (self.prefetch, REQUESTS_PREFETCH), strict=True):
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=prefetch)
            if passive:
                queues[spec.name] = await channel.get_queue(spec.name, ensure=True)
            else:
                queues[spec.name] = await channel.declare_queue(
                    spec.name, durable=spec.durable, arguments=_table(dict(spec.arguments))
                )
        self._archive, self._requests = queues[archive], queues[requests]
        directory_channel = await connection.channel()
        await directory_channel.set_qos(prefetch_count=1000)
        if messages is None:
            self._directory = await directory_channel.get_queue(
                self.names.directory_stream, ensure=True
            )
        else:
            for binding in topology.bindings:
                await queues[binding.queue].bind(messages, routing_key=binding.routing_key)
            self._directory = await declare_directory(directory_channel, self.names, messages)
        self._replies = await connection.channel(publisher_confirms=True)
        if not setup.is_closed:
            await setup.close()

    async def _on_lost(self, _sender: Any, exc: BaseException | None) -> None:
        if self._closing:
            return
        refusal = self._refusals.setup_refusal(exc) if isinstance(exc, ChannelClosed) else None
        if refusal is not None:
            # Not awaited here: this runs in aio-pika's reconnect task, which closing
            # the connection cancels and waits for.
            self._refusing = asyncio.get_running_loop().create_task(self._refuse(refusal))
            return
        self.nodes.move_on(self._connection)
        log.warning("broker connection lost, reconnecting to %s: %r", redact(self.url), exc)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_for_refusal())

    async def _on_restored(self, _sender: Any) -> None:
        log.info("broker connection restored")

    @property
    def node(self) -> str:
        return self.nodes.node

    async def _probe_for_refusal(self) -> None:
        """aio-pika retries a refused login for ever: the probe (dialling.py) tells a
        removed account or a changed password from a broker that is down, and moves the
        reconnect on from a node that does not answer."""
        refusal = await watch_for_refusal(
            self.nodes,
            self._connection,
            self._refusals,
            still_lost=lambda: (
                not self._closing
                and self._connection is not None
                and not self._connection.connected.is_set()
            ),
            interval=self.reconnect_interval,
            connection_name=f"chat-tui:archive:{self.login}:probe",
        )
        if refusal is not None:
            await self._refuse(refusal)

    async def _refuse(self, refusal: BrokerRefused) -> None:
        log.error("the broker refused the archive after connecting: %s", refusal)
        await self.close()
        if self.refused is not None and not self.refused.done():
            self.refused.set_result(str(refusal))

    # --- consuming -------------------------------------------------------------------

    async def consume_archive(self, handler: DeliveryHandler) -> None:
        await self._start(QueueConsumer(self._robust(self._archive), handler))

    async def consume_requests(self, handler: RequestHandler) -> None:
        await self._start(RequestConsumer(self._robust(self._requests), handler))

    async def consume_directory(self, handler: DeliveryHandler) -> None:
        """From the stream's first entry (again after a reconnect: folding is idempotent)."""
        consumer = QueueConsumer(
            self._robust(self._directory), handler, {"x-stream-offset": "first"}
        )
        await self._start(consumer)

    @staticmethod
    def _robust(queue: AbstractQueue | None) -> AbstractRobustQueue:
        assert isinstance(queue, AbstractRobustQueue), "connect() first"
        return queue

    async def _start(self, consumer: QueueConsumer) -> None:
        self._consumers.append(consumer)
        try:
            await consumer.start()
        except ChannelClosed as exc:
            raise setup_failure(self.nodes, self._refusals, exc, "consuming") from None

    async def stop_consuming(self) -> None:
        """Take no more deliveries; those already here can still be settled until
        `close` (which hands back whatever is left unsettled)."""
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            try:
                await consumer.cancel()
            except Exception as exc:  # a link that is down delivers nothing anyway
                log.info("cancelling a consumer: %r", exc)

    # --- replying --------------------------------------------------------------------

    async def reply(self, reply_to: str, correlation_id: str | None, body: bytes) -> None:
        """Publish an answer to the default exchange, for the requester's direct
        reply-to; confirmed. `PublishFailed` if it did not go out."""
        if self._replies is None:
            raise PublishFailed("not connected")
        message = aio_pika.Message(
            body,
            content_type=CONTENT_TYPE,
            correlation_id=correlation_id,
            timestamp=datetime.now(UTC),
            app_id=APP_ID,
            # The broker checks it: in accounts mode it proves the answer is the archive's.
            user_id=self.login,
        )
        try:
            await self._replies.default_exchange.publish(
                message, reply_to, timeout=self.confirm_timeout
            )
        except (TimeoutError, AMQPError, OSError, RuntimeError) as exc:
            raise PublishFailed(f"the answer did not go out: {described(exc)}") from None

    async def close(self) -> None:
        self._closing = True
        await self._close_link()

    async def drop(self) -> None:
        """Close the link after a set-up that failed, for a fresh `connect`."""
        self._closing = True  # a loss we made: no reconnect, no probe
        try:
            await self._close_link()
        finally:
            self._closing = False

    async def _close_link(self) -> None:
        for consumer in self._consumers:
            consumer.close()
        self._consumers.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
