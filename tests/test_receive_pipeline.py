"""The receive pipeline stores and shows batch N+1 while batch N is still being synced
and acked. A copy of a message that arrives in that window (its redelivery after a
reconnect, or a publisher's retry) must not reach the screen twice, nor may a batch
that was shown but never acked when the client stopped. And the consumer under it,
registered with aiormq directly, must survive the broker cancelling it."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from chat_tui.core.receiver import InboxPipeline, Settlement
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import SendMessage
from chat_tui.protocol.outgoing import Outgoing
from chat_tui.transport.consumers import Delivery
from tests.conftest import Deployment, RecordingSink, eventually


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


def hold_settling(pipeline: InboxPipeline) -> asyncio.Event:
    """Keep every batch of `pipeline` from settling (fsync and ack) until the event."""
    release = asyncio.Event()
    settle = pipeline.settle

    async def held_settle(settlement: Settlement) -> None:
        await release.wait()
        await settle(settlement)

    pipeline.settle = held_settle  # type: ignore[method-assign]
    return release


BATCHES_AHEAD_OF_A_HELD_SETTLE = 3
"""While settling is held, the receive stage goes on until three batches wait: one held in
settling, one in the queue to it, one waiting to be queued. Then it takes no more."""


def count_received_batches(pipeline: InboxPipeline) -> list[Settlement]:
    """Every batch that `pipeline`'s receive stage stored and passed on to settling."""
    received: list[Settlement] = []
    receive = pipeline.receive

    async def counted_receive(batch: list[Delivery]) -> Settlement | None:
        settlement = await receive(batch)
        if settlement is not None:
            received.append(settlement)
        return settlement

    pipeline.receive = counted_receive  # type: ignore[method-assign]
    return received


async def test_a_batch_shown_but_not_acked_at_stop_is_not_shown_again(
    deployment: Deployment,
) -> None:
    alice = await deployment.client("alice")
    bob_sink = RecordingSink()
    bob = await deployment.client("bob", bob_sink)
    assert bob.inbox is not None
    hold_settling(bob.inbox)  # never released: bob stops with the batches unacked
    received = count_received_batches(bob.inbox)
    texts = [f"seen once {i}" for i in range(5)]
    for text in texts:
        await alice.send(Conversation.dm("bob"), text)
    await eventually(lambda: len(bob_sink.shown) >= 2, what="bob to show some")
    # Nothing more is shown before the stop: all of them are, or the receive stage is
    # as far ahead of the held settling as it can go.
    await eventually(
        lambda: (
            len(bob_sink.shown) == len(texts) or len(received) == BATCHES_AHEAD_OF_A_HELD_SETTLE
        ),
        what="the receive stage to stop taking batches",
    )
    shown_before = bob_sink.contents()
    await bob.stop()

    # The broker gives back everything unacked; what the screen showed stays shown once.
    again_sink = RecordingSink()
    again = await deployment.client("bob", again_sink)
    await eventually(
        lambda: shown_before + again_sink.contents() == texts, what="the rest, once each"
    )
    assert again.inbox is not None
    await eventually(
        lambda: again.inbox is not None and again.inbox.counters.duplicates == len(shown_before),
        what="the unacked but shown ones to come back as duplicates",
    )
    assert again_sink.contents() == texts[len(shown_before) :]
    assert await again.store.message_count(Conversation.dm("alice")) == len(texts)


async def test_the_inbox_is_consumed_again_after_the_broker_cancels_its_consumer(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    alice = await deployment.client("alice")
    bob_sink = RecordingSink()
    await deployment.client("bob", bob_sink)
    await alice.send(Conversation.dm("bob"), "before")
    await eventually(lambda: bob_sink.contents() == ["before"], what="the first message")
    inbox = deployment.names.inbox_queue("bob")
    channel = await raw.channel()
    # Deleting the queue makes the broker cancel bob's consumer (basic.cancel).
    await channel.queue_delete(inbox)

    async def consumed_again() -> bool:
        probe = await raw.channel()
        try:
            queue = await probe.declare_queue(inbox, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        result = queue.declaration_result
        await probe.close()
        return bool(result and result.consumer_count)

    await eventually(consumed_again, timeout=20, what="bob's inbox declared and consumed again")
    await alice.send(Conversation.dm("bob"), "after")
    await eventually(lambda: bob_sink.contents() == ["before", "after"], what="the next message")
