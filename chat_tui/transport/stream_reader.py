"""Reads a stream queue once from its first entry, for a one-shot look such as
`chat-tui admin users`: a plain connection of its own, no reconnecting, no state kept.

A stream gives no end-of-stream signal over AMQP 0-9-1, so the read ends once nothing
arrived for `quiet` seconds, as the client's directory follower decides "caught up".
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelClosed, ProbableAuthenticationError
from pydantic import SecretStr

from chat_tui.config import connection_url, login_of, redact
from chat_tui.transport.errors import (
    AuthenticationRefused,
    BrokerUnreachable,
    SetupRefused,
    broker_reply,
)
from chat_tui.transport.refusals import queue_down

STREAM_PREFETCH = 1000
"""A stream consumer must set a prefetch; a large one lets the read go at full speed."""


@dataclass(frozen=True)
class StreamEntry:
    routing_key: str
    body: bytes
    user_id: str | None
    """The publisher's login as the broker enforced it, for the sender checks."""


async def read_stream(
    url: str,
    password: SecretStr | None,
    queue: str,
    *,
    quiet: float = 0.25,
    timeout: float = 10.0,
) -> list[StreamEntry]:
    """Every entry of the stream `queue`, oldest first. Raises `AuthenticationRefused`,
    `SetupRefused` (no such stream, no right to read it) or `BrokerUnreachable`,
    including when the whole read takes longer than `timeout`."""
    where = redact(url)
    try:
        connection = await aio_pika.connect(connection_url(url, password), timeout=timeout)
    except ProbableAuthenticationError as exc:
        raise AuthenticationRefused(
            f"the broker at {where} refused the credentials of {login_of(url)!r} "
            f"({broker_reply(exc)}): check the user and password of the admin URL"
        ) from None
    except (TimeoutError, OSError, AMQPError, RuntimeError) as exc:
        raise BrokerUnreachable(
            f"RabbitMQ at {where} is unreachable: {exc or type(exc).__name__}"
        ) from None
    try:
        async with asyncio.timeout(timeout):
            return await _read_all(connection, queue, quiet)
    except ChannelClosed as exc:
        if (down := queue_down(where, exc)) is not None:
            raise down from None
        raise SetupRefused(
            f"the broker at {where} refused to let {login_of(url)!r} read {queue} "
            f"({broker_reply(exc)}): run 'chat-tui admin init', and give that login read rights "
            "on the vhost"
        ) from None
    except TimeoutError:
        raise BrokerUnreachable(
            f"reading {queue} from RabbitMQ at {where} took longer than {timeout:g} s"
        ) from None
    except (OSError, AMQPError, RuntimeError) as exc:
        raise BrokerUnreachable(
            f"lost RabbitMQ at {where} while reading {queue}: {exc or type(exc).__name__}"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def _read_all(
    connection: aio_pika.abc.AbstractConnection, queue: str, quiet: float
) -> list[StreamEntry]:
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=STREAM_PREFETCH)
    stream = await channel.get_queue(queue, ensure=True)
    entries: list[StreamEntry] = []
    arrived = asyncio.Event()

    async def on_message(message: AbstractIncomingMessage) -> None:
        entries.append(StreamEntry(message.routing_key or "", message.body, message.user_id))
        arrived.set()
        # On a stream an ack only grants credit; the entry stays for other readers.
        await message.ack()

    tag = await stream.consume(on_message, arguments={"x-stream-offset": "first"})
    while True:
        arrived.clear()
        try:
            await asyncio.wait_for(arrived.wait(), quiet)
        except TimeoutError:
            break
    await stream.cancel(tag)
    return entries
