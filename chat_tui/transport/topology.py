"""Declares the exchanges and queues of docs/protocol.md; nothing else creates them.

Each queue is declared once per connect, on the channel that will consume it (with that
channel's prefetch): after a reconnect, aio-pika's robust channel declares its queues
and their bindings again, and the queue's consumer registers again on it.
"""

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
    """The exchanges and the dead-letter queue; returns NS.messages."""
    messages = await channel.declare_exchange(
        names.messages_exchange, ExchangeType.TOPIC, durable=True
    )
    dead = await channel.declare_exchange(names.dead_exchange, ExchangeType.FANOUT, durable=True)
    dead_letters = await channel.declare_queue(names.dead_letters_queue, durable=True)
    await dead_letters.bind(dead, routing_key="")
    return messages


async def declare_directory(
    channel: AbstractChannel, names: Names, messages: AbstractExchange
) -> AbstractQueue:
    """The directory stream, bound to the directory's routing keys."""
    directory = await channel.declare_queue(
        names.directory_stream, durable=True, arguments={"x-queue-type": "stream"}
    )
    await directory.bind(messages, routing_key=DIRECTORY_BINDING)
    return directory


async def queue_exists(throwaway: AbstractChannel, name: str) -> bool:
    """Whether a queue exists. A passive declare of a missing queue closes its channel,
    so ask on a channel of its own."""
    try:
        await throwaway.declare_queue(name, passive=True)
    except ChannelClosed:
        return False
    return True


async def declare_inbox(
    channel: AbstractChannel, names: Names, user_id: str, messages: AbstractExchange
) -> AbstractQueue:
    """The user's inbox, bound to user.U (each group is bound as the user joins it)."""
    return await _declare_personal(
        channel, names, names.inbox_queue(user_id), user_key(user_id), messages
    )


async def declare_receipts(
    channel: AbstractChannel, names: Names, user_id: str, messages: AbstractExchange
) -> AbstractQueue:
    """The user's receipts queue, bound to receipt.U."""
    return await _declare_personal(
        channel, names, names.receipts_queue(user_id), receipt_key(user_id), messages
    )


async def _declare_personal(
    channel: AbstractChannel,
    names: Names,
    queue_name: str,
    routing_key: str,
    messages: AbstractExchange,
) -> AbstractQueue:
    queue = await channel.declare_queue(
        queue_name, durable=True, arguments=personal_queue_arguments(names)
    )
    await queue.bind(messages, routing_key=routing_key)
    return queue
