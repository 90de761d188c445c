"""Publishing to NS.messages: persistent and mandatory, on a channel with confirms, and
every publish carrying the AMQP `user_id` of the login, which the broker checks.

A publish returns once the broker confirmed it, or raises what it means for the outbox:
`PublishReturned` (nobody to route it to) and `PublishRefused` (a right, its `user_id`,
its size) can never pass; `PublishFailed` (a nack, a timeout, a lost link) is retried.
After a nack the next publish goes out on a new channel (`_renew`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, DeliveryError, PublishError
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed

from chat_tui.protocol.models import APP_ID, CONTENT_TYPE
from chat_tui.protocol.names import Names
from chat_tui.transport.errors import (
    PublishFailed,
    PublishRefused,
    PublishReturned,
    broker_reply,
    described,
)
from chat_tui.transport.topology import existing_messages_exchange

log = logging.getLogger(__name__)


class Publishable(Protocol):
    """What a publish needs; both Outgoing and a stored outbox row have it."""

    @property
    def routing_key(self) -> str: ...
    @property
    def message_type(self) -> str: ...
    @property
    def amqp_message_id(self) -> str: ...
    @property
    def body(self) -> bytes: ...


class Publisher:
    """The publisher channel of one connection, and NS.messages as that channel sees it."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        channel: AbstractChannel,
        exchange: AbstractExchange,
        names: Names,
        *,
        login: str,
        confirm_timeout: float,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self.exchange = exchange
        """NS.messages: every publish goes to it (and the inbox binds to it)."""
        self._names = names
        self._login = login
        self._confirm_timeout = confirm_timeout
        self._nacked = False
        """The broker nacked a publish on this channel: use a new one."""
        self._renewing = asyncio.Lock()

    async def publish(self, out: Publishable) -> None:
        """Publish persistent and mandatory; return once the broker confirmed it."""
        if self._nacked:
            await self._renew()
        message = aio_pika.Message(
            out.body,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=out.amqp_message_id,
            type=out.message_type,
            timestamp=datetime.now(UTC),
            app_id=APP_ID,
            user_id=self._login,
        )
        try:
            await self.exchange.publish(
                message, out.routing_key, mandatory=True, timeout=self._confirm_timeout
            )
        except PublishError:
            raise PublishReturned(f"nobody to route {out.routing_key!r} to") from None
        except ChannelAccessRefused as exc:
            raise PublishRefused(
                f"the broker does not let {self._login!r} publish to {out.routing_key!r} "
                f"({broker_reply(exc)})"
            ) from None
        except ChannelPreconditionFailed as exc:
            # The user_id is not the login (RabbitMQ checks it), or the message is over
            # the broker's max_message_size: the same message can never pass.
            raise PublishRefused(
                f"the broker refused the message itself ({broker_reply(exc)})"
            ) from None
        except DeliveryError as exc:
            self._nacked = True
            raise PublishFailed(f"the broker refused it: {exc}") from None
        except TimeoutError:
            raise PublishFailed(f"no confirm within {self._confirm_timeout} s") from None
        except (AMQPError, ChannelInvalidStateError, OSError, RuntimeError) as exc:
            raise PublishFailed(f"connection trouble: {described(exc)}") from None

    async def _renew(self) -> None:
        """Publish on a new channel from now on. RabbitMQ 3.10 nacks every later publish
        to a quorum queue on a channel that published to it while it had no leader (its
        node had just died): on the test cluster the old channel was nacked 120 times
        in 60 s, and a new channel's first publish was confirmed. A nack's other causes
        (a queue's disk alarm, a full queue) do not mind the new channel."""
        async with self._renewing:
            if not self._nacked:
                return
            old = self._channel
            try:
                channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                exchange = await existing_messages_exchange(channel, self._names)
            except (AMQPError, ChannelInvalidStateError, OSError, RuntimeError) as exc:
                raise PublishFailed(f"cannot open a new publisher channel: {exc}") from None
            self._channel, self.exchange = channel, exchange
            self._nacked = False
            log.info("publishing on a new channel after the broker nacked a publish")
            with contextlib.suppress(Exception):
                await old.close()
