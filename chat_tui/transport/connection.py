"""The broker link: one robust aio-pika connection and its channels.

- a publisher channel with confirms (`publisher.py`: what a publish means, and a new
  channel after a nack);
- a consumer channel with a prefetch for the inbox, and another for the receipts queue
  (each pipeline acks with `multiple`, so they must not share delivery tags);
- a stream channel for the directory, which RabbitMQ requires to have its own QoS.

After a reconnect aio-pika restores each robust channel (QoS, queues, bindings), and
our `QueueConsumer`s register again from the channels' reopen callbacks (consumers.py).
The queues are kept as attributes because the connection holds its channels only
weakly: a channel that nothing references is not restored.

A refusal (the login, a right, a missing or differently declared object, the broker's
certificate) is a `BrokerRefused` that says what to do: retrying cannot help. That
holds after the first connection too: aio-pika's reconnect loop retries every error
forever, so while it reconnects the transport tries a plain connection of its own now
and then, and a refusal there (or in restoring the channels) closes the robust
connection and reports the refusal in `LinkStatus.refused`.

Failover: given the URLs of several nodes (`nodes.py`), `connect` takes the first that
answers, and after a loss the reconnect goes to the next node, round the list; the
refusal probe, which tries a plain connection at aio-pika's pace anyway, moves it on
again while the node it points at is down. The restore after a failover is then
aio-pika's ordinary one: the same channels, the same consumers, and a dead channel's
deliveries are never acked, as after any reconnect.

What a refusal says lives in `refusals.py` (`ClientRefusals`), and what the client's
link and the archive's do alike in dialling a node and probing it, in `dialling.py`.
Over 400 lines: the `Transport` is the one link the core holds (`BrokerLink`), so the
declarations and the consumers, which live and die with its connection, are here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from aio_pika.abc import (
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
)
from aiormq.exceptions import ChannelClosed
from pydantic import SecretStr

from chat_tui.config import redact
from chat_tui.protocol.names import Names, group_key
from chat_tui.protocol.queues import QueueType
from chat_tui.transport.consumers import DeliveryHandler, QueueConsumer
from chat_tui.transport.dialling import (
    on_first_answering,
    open_on_node,
    setup_failure,
    watch_for_refusal,
)
from chat_tui.transport.errors import (
    BrokerRefused,
    BrokerUnreachable,
    PublishFailed,
)
from chat_tui.transport.nodes import BrokerNodes
from chat_tui.transport.publisher import Publishable, Publisher
from chat_tui.transport.refusals import ClientRefusals, queue_down
from chat_tui.transport.topology import (
    declare_directory,
    declare_inbox,
    declare_receipts,
    declare_shared,
    existing_messages_exchange,
    missing_objects,
    queue_exists,
)

log = logging.getLogger(__name__)


class LinkState(StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


@dataclass(frozen=True)
class LinkStatus:
    state: LinkState
    next_retry_at: datetime | None = None
    error: str | None = None
    refused: str | None = None
    """The broker refused us for good after the first connection (a login removed or
    changed, a right taken away): what was refused and what to do. The link is closed."""
    node: str | None = None
    """`host:port` of the node the link is on, while it is online."""
    unavailable_queue: str | None = None
    """The broker answered, but cannot serve this queue of ours (`QueueUnavailable`)."""


@dataclass(frozen=True)
class InboxAtConnect:
    """What `Transport.connect` found of this user's inbox."""

    created: bool
    """It did not exist before: the user is new here and announces itself."""
    had_consumer: bool
    """Another client was consuming it; with a single active consumer this one waits."""


class Transport:
    """Everything the core needs from RabbitMQ, and nothing about chat semantics."""

    def __init__(
        self,
        url: str | Sequence[str],
        names: Names,
        user_id: str,
        *,
        password: SecretStr | None = None,
        accounts_mode: bool = False,
        queue_type: QueueType = "classic",
        tls_ca_file: Path | None = None,
        tls_insecure: bool = False,
        heartbeat: int = 10,
        confirm_timeout: float = 10.0,
        reconnect_interval: float = 2.0,
        prefetch: int = 1600,
    ) -> None:
        self.nodes = BrokerNodes(
            url, password=password, tls_ca_file=tls_ca_file, tls_insecure=tls_insecure
        )
        self.names = names
        self.user_id = user_id
        self.accounts_mode = accounts_mode
        """Declare nothing shared: look up what `chat-tui admin` created."""
        self.queue_type: QueueType = queue_type
        """The deployment's layout (protocol/queues.py), used in open mode, where the
        client declares its queues."""
        self._refusals = ClientRefusals(
            self.nodes, names, user_id, accounts_mode=accounts_mode, queue_type=queue_type
        )
        self.heartbeat = heartbeat
        self.confirm_timeout = confirm_timeout
        self.reconnect_interval = reconnect_interval
        # Four of the inbox pipeline's batches of 400: one settling, one waiting to
        # settle, one being stored, and the next arriving meanwhile, so the broker keeps
        # sending during a backlog instead of waiting for each ack.
        self.prefetch = prefetch
        self.on_status: Callable[[LinkStatus], None] = lambda status: None
        self.on_reconnected: Callable[[], Awaitable[None]] | None = None
        self.status = LinkStatus(LinkState.OFFLINE)
        self._connection: AbstractRobustConnection | None = None
        self._publisher: Publisher | None = None
        self._inbox: AbstractQueue | None = None
        self._receipts: AbstractQueue | None = None
        self._directory: AbstractQueue | None = None
        self._closing = False
        self._consumers: list[QueueConsumer] = []
        self._refusal_task: asyncio.Task[None] | None = None
        """Watches for a refusal while aio-pika reconnects, or acts on one."""

    @property
    def online(self) -> bool:
        return self.status.state is LinkState.ONLINE

    def _set_status(self, status: LinkStatus) -> None:
        self.status = status
        self.on_status(status)

    @property
    def url(self) -> str:
        """The URL of the node the link is on (or tries next), without the password."""
        return self.nodes.url

    @property
    def urls(self) -> tuple[str, ...]:
        return self.nodes.urls

    @property
    def login(self) -> str:
        """The broker username: the `user_id` property of every publish."""
        return self.nodes.login

    async def connect(self, connect_timeout: float = 5.0) -> InboxAtConnect:
        """Connect to the first node that answers, declare the topology, and say what was
        found of this user's inbox."""
        self._set_status(LinkStatus(LinkState.CONNECTING))
        inbox = await on_first_answering(self.nodes, lambda: self._connect_to_node(connect_timeout))
        log.info("connected to RabbitMQ at %s", redact(self.url))
        self._set_status(self._online_status())
        return inbox

    def _online_status(self) -> LinkStatus:
        return LinkStatus(LinkState.ONLINE, node=self.nodes.node)

    async def _connect_to_node(self, connect_timeout: float) -> InboxAtConnect:
        """One node: open the robust connection and declare, or raise why not."""
        self._connection, inbox = await open_on_node(
            self.nodes,
            self._refusals,
            self._declare_topology,
            on_lost=self._on_lost,
            on_restored=self._on_restored,
            connection_name=f"chat-tui:{self.user_id}",
            heartbeat=self.heartbeat,
            reconnect_interval=self.reconnect_interval,
            timeout=connect_timeout,
        )
        return inbox

    async def _declare_topology(self, connection: AbstractRobustConnection) -> InboxAtConnect:
        passive = self.accounts_mode
        if passive:
            missing = await missing_objects(connection, self.names, self.user_id)
            refusal = self._refusals.missing_objects(*missing)
            if refusal is not None:
                raise refusal
        publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
        if passive:
            messages = await existing_messages_exchange(publisher, self.names)
            # `chat-tui admin add-user` created the queues: no start finds them new, and
            # the client registers whenever the directory does not list it yet.
            created = False
        else:
            messages = await declare_shared(publisher, self.names, self.queue_type)
            probe = await connection.channel()
            created = not await queue_exists(probe, self.names.inbox_queue(self.user_id))
            if not probe.is_closed:
                await probe.close()
        self._publisher = Publisher(
            connection,
            publisher,
            messages,
            self.names,
            login=self.login,
            confirm_timeout=self.confirm_timeout,
        )
        inbox_channel = await connection.channel()
        await inbox_channel.set_qos(prefetch_count=self.prefetch)
        self._inbox = await declare_inbox(
            inbox_channel,
            self.names,
            self.user_id,
            messages,
            queue_type=self.queue_type,
            passive=passive,
        )
        declared = self._inbox.declaration_result
        had_consumer = bool(declared.consumer_count if declared else 0)
        # The receipts queue gets a channel of its own: the inbox and receipt pipelines
        # each ack with `multiple`, which covers every earlier delivery tag of the
        # channel. On a shared channel one pipeline's ack settled the other's deliveries
        # before they were stored or rejected: lost messages, and bad bodies that were
        # never dead-lettered (fault scenario 7).
        receipts_channel = await connection.channel()
        await receipts_channel.set_qos(prefetch_count=self.prefetch)
        self._receipts = await declare_receipts(
            receipts_channel,
            self.names,
            self.user_id,
            messages,
            queue_type=self.queue_type,
            passive=passive,
        )
        directory_channel = await connection.channel()
        await directory_channel.set_qos(prefetch_count=1000)
        self._directory = await declare_directory(
            directory_channel, self.names, messages, passive=passive
        )
        return InboxAtConnect(created=created, had_consumer=had_consumer)

    async def _on_lost(self, _sender: Any, exc: BaseException | None) -> None:
        if self._closing:
            return
        # aio-pika calls this too when restoring the channels on a new link failed: a
        # right taken away or (in accounts mode) an object deleted stays so.
        if isinstance(exc, ChannelClosed):
            refusal = self._refusals.setup_refusal(exc)
            if refusal is not None:
                # Not here: this runs in aio-pika's reconnect task, which closing the
                # connection cancels and waits for.
                self._stop_refusal_task()
                self._refusal_task = asyncio.create_task(self._refuse(refusal))
                return
        # aio-pika tries again at once, and that attempt goes to the next node.
        self.nodes.move_on(self._connection)
        retry = datetime.now(UTC) + timedelta(seconds=self.reconnect_interval)
        down = queue_down(redact(self.url), exc) if exc is not None else None
        reason = str(down or exc) if exc else "connection closed"
        log.warning("broker connection lost: %r", exc)
        self._set_status(
            LinkStatus(
                LinkState.RECONNECTING,
                next_retry_at=retry,
                error=reason,
                unavailable_queue=down.queue if down is not None else None,
            )
        )
        if self._refusal_task is None or self._refusal_task.done():
            self._refusal_task = asyncio.create_task(self._probe_for_refusal())

    async def _probe_for_refusal(self) -> None:
        """While aio-pika reconnects: a refusal that the probe (dialling.py) meets ends
        the link; meanwhile the probe moves the reconnect on from a node that is down."""
        refusal = await watch_for_refusal(
            self.nodes,
            self._connection,
            self._refusals,
            still_lost=lambda: (
                not self._closing and self._connection is not None and not self.online
            ),
            interval=self.reconnect_interval,
            connection_name=f"chat-tui:{self.user_id}:probe",
        )
        if refusal is not None:
            await self._refuse(refusal)

    async def _refuse(self, refusal: BrokerRefused) -> None:
        """Stop aio-pika's reconnecting for good, and say why."""
        log.error("the broker refused us after connecting: %s", refusal)
        await self.drop()
        self._set_status(LinkStatus(LinkState.OFFLINE, error=str(refusal), refused=str(refusal)))

    async def _on_restored(self, _sender: Any) -> None:
        self.nodes.note_dialled(self._connection)
        log.info("broker connection restored, to RabbitMQ at %s", redact(self.url))
        self._set_status(self._online_status())
        if self.on_reconnected is not None:
            await self.on_reconnected()

    async def drop(self) -> None:
        """Close this connection quietly so that `connect` can start afresh."""
        connection, self._connection = self._connection, None
        self._stop_refusal_task()
        self._close_consumers()
        if connection is not None:
            self._closing = True
            try:
                await connection.close()
            except Exception as exc:
                log.info("closing a broken connection: %r", exc)
            finally:
                self._closing = False

    async def close(self) -> None:
        self._closing = True
        self._stop_refusal_task()
        self._close_consumers()
        if self._connection is not None:
            await self._connection.close()
        self._set_status(LinkStatus(LinkState.OFFLINE))

    def _stop_refusal_task(self) -> None:
        probe, self._refusal_task = self._refusal_task, None
        if probe is not None and probe is not asyncio.current_task():
            probe.cancel()

    # --- publishing ------------------------------------------------------------------

    async def publish(self, out: Publishable) -> None:
        """Publish persistent and mandatory; return once the broker confirmed it."""
        if self._publisher is None or not self.online:
            raise PublishFailed("not connected")
        await self._publisher.publish(out)

    async def open_channel(self) -> AbstractRobustChannel:
        """A channel of its own, with confirms, for traffic of a protocol beside the chat
        (the archive's requests, archive_requests.py); restored after a reconnect."""
        if self._connection is None or not self.online:
            raise BrokerUnreachable("not connected")
        return await self._connection.channel(publisher_confirms=True, on_return_raises=True)

    # --- consuming -------------------------------------------------------------------

    async def consume_inbox(self, handler: DeliveryHandler) -> None:
        await self._consume(self._inbox, handler)

    async def consume_receipts(self, handler: DeliveryHandler) -> None:
        await self._consume(self._receipts, handler)

    async def consume_directory(self, handler: DeliveryHandler) -> None:
        """Follow the directory stream from its first entry (again after a reconnect;
        folding it is idempotent)."""
        await self._consume(self._directory, handler, {"x-stream-offset": "first"})

    async def _consume(
        self,
        queue: AbstractQueue | None,
        handler: DeliveryHandler,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        assert isinstance(queue, AbstractRobustQueue), "connect() first"
        consumer = QueueConsumer(queue, handler, arguments)
        self._consumers.append(consumer)
        try:
            await consumer.start()
        except ChannelClosed as exc:
            raise setup_failure(self.nodes, self._refusals, exc, "consuming") from None

    def _close_consumers(self) -> None:
        for consumer in self._consumers:
            consumer.close()
        self._consumers.clear()

    # --- group bindings --------------------------------------------------------------

    async def bind_group(self, group_id: str) -> None:
        assert self._inbox is not None and self._publisher is not None
        await self._inbox.bind(self._publisher.exchange, routing_key=group_key(group_id))

    async def unbind_group(self, group_id: str) -> None:
        assert self._inbox is not None and self._publisher is not None
        await self._inbox.unbind(self._publisher.exchange, routing_key=group_key(group_id))
