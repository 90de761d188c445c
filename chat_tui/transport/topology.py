"""Declares the exchanges and queues of docs/protocol.md, in the deployment's layout
(`queue_type`, protocol/queues.py); nothing else creates them.

Each queue is declared once per connect, on the channel that will consume it (with that
channel's prefetch): after a reconnect, aio-pika's robust channel declares its queues
and their bindings again, and the queue's consumer registers again on it.

In accounts mode `chat-tui admin` has created everything and users may configure
nothing: the client only looks its objects up (`passive`), and binds no personal key.
"""

from __future__ import annotations

from aio_pika import ExchangeType
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelClosed, ChannelNotFoundEntity
from pamqp.common import FieldTable

from chat_tui.protocol.names import DIRECTORY_BINDING, Names, receipt_key, user_key
from chat_tui.protocol.queues import (
    QueueArguments,
    QueueType,
    directory_arguments,
    open_dead_letters_arguments,
    personal_queue_arguments,
)


def _table(arguments: QueueArguments) -> FieldTable:
    table: FieldTable = dict(arguments)
    return table


async def declare_shared(
    channel: AbstractChannel, names: Names, queue_type: QueueType = "classic"
) -> AbstractExchange:
    """The exchanges and the dead-letter queue of open mode; returns NS.messages.

    A classic dead-letter queue keeps protocol version 1's arguments (none): `chat-tui
    admin init` bounds it with x-max-length, which open-mode brokers have never seen."""
    messages = await channel.declare_exchange(
        names.messages_exchange, ExchangeType.TOPIC, durable=True
    )
    dead = await channel.declare_exchange(names.dead_exchange, ExchangeType.FANOUT, durable=True)
    dead_letters = await channel.declare_queue(
        names.dead_letters_queue,
        durable=True,
        arguments=_table(open_dead_letters_arguments(queue_type)),
    )
    await dead_letters.bind(dead, routing_key="")
    return messages


async def existing_messages_exchange(channel: AbstractChannel, names: Names) -> AbstractExchange:
    """NS.messages as `chat-tui admin init` declared it."""
    return await channel.declare_exchange(names.messages_exchange, passive=True)


async def missing_objects(
    connection: AbstractRobustConnection, names: Names, user_id: str
) -> tuple[list[str], list[str]]:
    """What is missing of the shared objects, and of this user's own queues."""
    shared = [
        name
        for name, is_exchange in (
            (names.messages_exchange, True),
            (names.dead_exchange, True),
            (names.dead_letters_queue, False),
            (names.directory_stream, False),
        )
        if not await _exists(connection, name, exchange=is_exchange)
    ]
    own = [
        name
        for name in (names.inbox_queue(user_id), names.receipts_queue(user_id))
        if not await _exists(connection, name, exchange=False)
    ]
    return shared, own


async def _exists(connection: AbstractRobustConnection, name: str, *, exchange: bool) -> bool:
    # A passive declare of a missing object closes its channel: one channel per question.
    channel = await connection.channel()
    try:
        if exchange:
            await channel.declare_exchange(name, passive=True)
        else:
            await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()
    return True


async def declare_directory(
    channel: AbstractChannel, names: Names, messages: AbstractExchange, *, passive: bool = False
) -> AbstractQueue:
    """The directory stream, bound to the directory's routing keys."""
    directory = await channel.declare_queue(
        names.directory_stream,
        durable=True,
        arguments=_table(directory_arguments()),
        passive=passive,
    )
    if not passive:
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
    channel: AbstractChannel,
    names: Names,
    user_id: str,
    messages: AbstractExchange,
    *,
    queue_type: QueueType = "classic",
    passive: bool = False,
) -> AbstractQueue:
    """The user's inbox, bound to user.U (each group is bound as the user joins it)."""
    return await _declare_personal(
        channel,
        names,
        names.inbox_queue(user_id),
        user_key(user_id),
        messages,
        queue_type,
        passive,
    )


async def declare_receipts(
    channel: AbstractChannel,
    names: Names,
    user_id: str,
    messages: AbstractExchange,
    *,
    queue_type: QueueType = "classic",
    passive: bool = False,
) -> AbstractQueue:
    """The user's receipts queue, bound to receipt.U."""
    return await _declare_personal(
        channel,
        names,
        names.receipts_queue(user_id),
        receipt_key(user_id),
        messages,
        queue_type,
        passive,
    )


async def _declare_personal(
    channel: AbstractChannel,
    names: Names,
    queue_name: str,
    routing_key: str,
    messages: AbstractExchange,
    queue_type: QueueType,
    passive: bool,
) -> AbstractQueue:
    queue = await channel.declare_queue(
        queue_name,
        durable=True,
        arguments=_table(personal_queue_arguments(names, queue_type)),
        passive=passive,
    )
    if not passive:
        await queue.bind(messages, routing_key=routing_key)
    return queue
