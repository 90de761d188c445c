"""Declares the exchanges and queues of docs/protocol.md; nothing else creates them."""

from __future__ import annotations

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aio_pika.exceptions import ChannelClosed
from pamqp.common import FieldTable

from chat_tui.protocol.names import DIRECTORY_BINDING, Names, receipt_key, user_key


def personal_queue_arguments(names: Names) -> FieldTable:
    """Arguments of every inbox and receipts queue; they must match on every declare."""
    return {"x-dead-letter-exchange": names.dead_exchange, "x-single-active-consumer": True}


async def declare_shared(channel: AbstractChannel, names: Names) -> AbstractExchange:
    """The exchanges, the dead-letter queue and the directory stream; returns NS.messages."""
    messages = await channel.declare_exchange(
        names.messages_exchange, ExchangeType.TOPIC, durable=True
    )
    dead = await channel.declare_exchange(names.dead_exchange, ExchangeType.FANOUT, durable=True)
    dead_letters = await channel.declare_queue(names.dead_letters_queue, durable=True)
    await dead_letters.bind(dead, routing_key="")
    directory = await channel.declare_queue(
        names.directory_stream, durable=True, arguments={"x-queue-type": "stream"}
    )
    await directory.bind(messages, routing_key=DIRECTORY_BINDING)
    return messages


async def queue_exists(channel_factory: AbstractChannel, name: str) -> bool:
    """Whether a queue exists. A passive declare of a missing queue closes its channel,
    so `channel_factory` must be a throwaway channel."""
    try:
        await channel_factory.declare_queue(name, passive=True)
    except ChannelClosed:
        return False
    return True


async def declare_personal(
    channel: AbstractChannel, names: Names, user_id: str, messages: AbstractExchange
) -> tuple[AbstractQueue, AbstractQueue]:
    """The user's inbox (bound to user.U) and receipts queue (bound to receipt.U)."""
    arguments = personal_queue_arguments(names)
    inbox = await channel.declare_queue(
        names.inbox_queue(user_id), durable=True, arguments=arguments
    )
    await inbox.bind(messages, routing_key=user_key(user_id))
    receipts = await channel.declare_queue(
        names.receipts_queue(user_id), durable=True, arguments=arguments
    )
    await receipts.bind(messages, routing_key=receipt_key(user_id))
    return inbox, receipts
