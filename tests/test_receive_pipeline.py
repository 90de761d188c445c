"""The receive pipeline stores and shows batch N+1 while batch N is still being synced
and acked. A copy of a message that arrives in that window (its redelivery after a
reconnect, or a publisher's retry) must not reach the screen twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from chat_tui.core.receiver import Settlement
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import SendMessage
from chat_tui.protocol.outgoing import Outgoing
from tests.conftest import Deployment, RecordingSink, eventually


@pytest.fixture
async def raw(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    yield connection
    await connection.close()


async def test_a_copy_arriving_while_its_batch_settles_is_shown_once(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    bob_sink = RecordingSink()
    bob = await deployment.client("bob", bob_sink)
    assert bob.inbox is not None
    # Hold every batch in the settling stage (its fsync and ack) until released.
    release = asyncio.Event()
    settle = bob.inbox.settle
    settled: list[int] = []

    async def held_settle(settlement: Settlement) -> None:
        await release.wait()
        await settle(settlement)
        settled.append(1)

    bob.inbox.settle = held_settle  # type: ignore[method-assign]

    message = SendMessage(
        message_id=uuid.uuid4(), sender_id="alice", recipient_id="bob", content="only once, please"
    )
    out = Outgoing.chat(message)
    channel = await raw.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(deployment.names.messages_exchange)

    async def publish() -> None:
        await exchange.publish(
            aio_pika.Message(out.body, message_id=out.amqp_message_id), routing_key=out.routing_key
        )

    await publish()
    await eventually(lambda: bob_sink.contents() == ["only once, please"], what="the first copy")
    # The first batch is shown but not settled: its `shown` mark is not written yet.
    await publish()
    await eventually(
        lambda: bob.inbox is not None and bob.inbox.counters.duplicates == 1,
        what="the second copy to be stored (as a duplicate) in the next batch",
    )
    release.set()
    await eventually(lambda: len(settled) == 2, what="both batches to settle")
    assert bob_sink.contents() == ["only once, please"]
    assert await bob.store.message_count(Conversation.dm("alice")) == 1
