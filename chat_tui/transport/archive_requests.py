"""Asking the archive: one request, one answer, over RabbitMQ's direct reply-to.

The requester consumes the pseudo-queue `amq.rabbitmq.reply-to` (no-ack, as the broker
requires) and publishes each request on that same channel, which is what lets the broker
route the answer back to it without a queue of ours. A request goes to NS.messages under
`archive.request`, mandatory and confirmed: a deployment with no archive has no queue
bound to that key, so the broker returns the request at once and the requester says so
without waiting out a timeout. Answers are matched to their request by correlation ID.

The channel is a robust one on the transport's connection; aio-pika reopens it after a
reconnect, but a direct reply-to consumer is not a queue it can restore, so each request
checks which underlying channel it is on and consumes again when that changed. Requests
in flight when the channel went down end with `ArchiveLinkDown`; the answers to them
would go to a consumer that no longer exists.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiormq.abc
from aio_pika.abc import AbstractRobustChannel
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aiormq import spec
from aiormq.exceptions import ChannelAccessRefused, DeliveryError, PublishError

from chat_tui.protocol.models import APP_ID, CONTENT_TYPE
from chat_tui.protocol.names import ARCHIVE_REQUEST_KEY, Names
from chat_tui.transport.errors import TransportError

log = logging.getLogger(__name__)

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


class ArchiveRequestError(Exception):
    """Base of what asking the archive can fail with; the text is fit to show."""


class ArchiveNotDeployed(ArchiveRequestError):
    """The broker returned the request: no queue takes archive requests here."""


class ArchiveTimeout(ArchiveRequestError):
    """The request was routed, but no answer came in time (no worker consumes it)."""


class ArchiveLinkDown(ArchiveRequestError):
    """Not connected, or the channel went down before the answer came."""


class ArchiveRequestRefused(ArchiveRequestError):
    """The broker would not take the request (a right missing, its size)."""


ChannelOpener = Callable[[], Awaitable[AbstractRobustChannel]]


class ArchiveRequester:
    """Sends archive requests and waits for their answers; one per client."""

    def __init__(
        self,
        open_channel: ChannelOpener,
        names: Names,
        login: str,
        *,
        confirm_timeout: float = 10.0,
    ) -> None:
        self._open_channel = open_channel
        self._exchange = names.messages_exchange
        self._login = login
        self._confirm_timeout = confirm_timeout
        self._channel: AbstractRobustChannel | None = None
        self._consuming_on: aiormq.abc.AbstractChannel | None = None
        self._waiting: dict[str, tuple[aiormq.abc.AbstractChannel, asyncio.Future[bytes]]] = {}
        """correlation ID -> the channel its request went on, and its answer to come."""
        self._ready = asyncio.Lock()

    async def ask(self, body: bytes, message_type: str, timeout: float) -> bytes:
        """Publish one request and return the body of its answer. Raises one of the
        `ArchiveRequestError`s; never retries by itself."""
        correlation_id = uuid.uuid4().hex
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                underlay = await self._consuming_channel()
                self._waiting[correlation_id] = (underlay, answer)
                await self._publish(underlay, body, message_type, correlation_id)
                return await answer
        except TimeoutError:
            raise ArchiveTimeout(f"the archive did not answer within {timeout:g} s") from None
        finally:
            self._waiting.pop(correlation_id, None)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        self._consuming_on = None
        self._fail_waiting("the client is closing")
        if channel is not None and not channel.is_closed:
            try:
                await channel.close()
            except Exception as exc:
                log.info("closing the archive channel: %r", exc)

    async def _consuming_channel(self) -> aiormq.abc.AbstractChannel:
        """The underlying channel, consuming direct reply-to on it first if need be."""
        async with self._ready:
            try:
                if self._channel is None or self._channel.is_closed:
                    self._channel = await self._open_channel()
                underlay = await self._channel.get_underlay_channel()
                if underlay is not self._consuming_on:
                    await underlay.basic_consume(DIRECT_REPLY_TO, self._on_answer, no_ack=True)
                    underlay.closing.add_done_callback(functools.partial(self._closed, underlay))
                    self._consuming_on = underlay
            except (
                TransportError,
                AMQPError,
                ChannelInvalidStateError,
                OSError,
                RuntimeError,
            ) as exc:
                raise ArchiveLinkDown(f"cannot reach the broker: {_text(exc)}") from None
            return underlay

    async def _publish(
        self,
        underlay: aiormq.abc.AbstractChannel,
        body: bytes,
        message_type: str,
        correlation_id: str,
    ) -> None:
        properties = spec.Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=1,  # a request is worth nothing once its asker is gone
            message_id=correlation_id,  # aiormq matches a return to its publish by this
            correlation_id=correlation_id,
            reply_to=DIRECT_REPLY_TO,
            message_type=message_type,
            timestamp=datetime.now(UTC),
            app_id=APP_ID,
            user_id=self._login,
        )
        try:
            await underlay.basic_publish(
                body,
                exchange=self._exchange,
                routing_key=ARCHIVE_REQUEST_KEY,
                properties=properties,
                mandatory=True,
                timeout=self._confirm_timeout,
            )
        except PublishError:
            raise ArchiveNotDeployed(
                "no archive takes requests on this deployment (nothing is bound to "
                f"{ARCHIVE_REQUEST_KEY!r})"
            ) from None
        except ChannelAccessRefused as exc:
            raise ArchiveRequestRefused(
                f"the broker does not let {self._login!r} ask the archive ({_text(exc)})"
            ) from None
        except DeliveryError as exc:
            raise ArchiveLinkDown(f"the broker did not take the request: {_text(exc)}") from None
        except (AMQPError, ChannelInvalidStateError, OSError, RuntimeError) as exc:
            raise ArchiveLinkDown(f"connection trouble: {_text(exc)}") from None

    async def _on_answer(self, message: aiormq.abc.DeliveredMessage) -> None:
        correlation_id = message.header.properties.correlation_id
        waiting = self._waiting.get(correlation_id or "")
        waiter = None if waiting is None else waiting[1]
        if waiter is None:
            # Too late (its asker timed out) or not ours: nothing waits for it.
            log.info("an archive answer nobody waits for (correlation %r)", correlation_id)
        elif not waiter.done():
            waiter.set_result(message.body)

    def _closed(self, closed: aiormq.abc.AbstractChannel, _closing: asyncio.Future[object]) -> None:
        # Answers to what is in flight on it would go to the consumer that just went away.
        if self._consuming_on is closed:
            self._consuming_on = None
        self._fail_waiting("the connection to the broker was lost while waiting", on=closed)

    def _fail_waiting(self, reason: str, on: aiormq.abc.AbstractChannel | None = None) -> None:
        for channel, waiter in self._waiting.values():
            if (on is None or channel is on) and not waiter.done():
                waiter.set_exception(ArchiveLinkDown(reason))


def _text(exc: BaseException) -> str:
    return str(exc.args[-1]) if exc.args else type(exc).__name__
