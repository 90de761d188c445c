"""queue_type = "quorum" on the shared broker (a single node runs quorum queues too):
the whole open-mode flow on quorum inboxes, receipts queues and dead-letter queue; a
client of the other type told plainly what is wrong; a long storage failure that does
not dead-letter a valid message; invalid bodies dead-lettered from quorum queues.

The flows are the suite's own tests, run again on a `QuorumDeployment`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from chat_tui.backoff import Backoff
from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.names import Names
from chat_tui.protocol.queues import (
    QUORUM_DELIVERY_LIMIT,
    QueueType,
    open_dead_letters_arguments,
    personal_queue_arguments,
    type_bound_arguments,
)
from chat_tui.store.database import StoreError
from chat_tui.transport.topology import declare_shared
from tests import test_dead_letters, test_delivery, test_groups, test_receipts
from tests.conftest import Deployment, RecordingSink, eventually, knows
from tests.test_wire_format import queue_depth


class QuorumDeployment(Deployment):
    """A namespace whose clients declare the quorum layout."""

    def settings(self, user: str, **overrides: Any) -> Settings:
        return super().settings(user, **{"queue_type": "quorum", **overrides})


@pytest.fixture
async def quorum(amqp_url: str, tmp_path: Path) -> AsyncIterator[QuorumDeployment]:
    deployment = QuorumDeployment(amqp_url, tmp_path)
    yield deployment
    await deployment.cleanup()


# --- the layout ------------------------------------------------------------------------


def test_the_quorum_layout_adds_only_what_quorum_queues_take() -> None:
    names = Names("chat")
    classic, quorum = personal_queue_arguments(names), personal_queue_arguments(names, "quorum")
    assert classic == {"x-dead-letter-exchange": "chat.dead", "x-single-active-consumer": True}
    assert quorum == {
        **classic,
        "x-queue-type": "quorum",
        "x-delivery-limit": QUORUM_DELIVERY_LIMIT,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert open_dead_letters_arguments() == {}
    assert open_dead_letters_arguments("quorum") == {
        "x-queue-type": "quorum",
        "x-max-length": 100_000,
    }
    assert type_bound_arguments(names) == {
        "x-queue-type",
        "x-delivery-limit",
        "x-dead-letter-strategy",
        "x-overflow",
        "x-max-length",
    }


async def test_a_quorum_client_declares_its_queues_as_quorum_queues(
    quorum: QuorumDeployment, raw: AbstractRobustConnection
) -> None:
    await quorum.client("alice")
    names = quorum.names
    expected = {
        names.inbox_queue("alice"): personal_queue_arguments(names, "quorum"),
        names.receipts_queue("alice"): personal_queue_arguments(names, "quorum"),
        names.dead_letters_queue: open_dead_letters_arguments("quorum"),
    }
    # The broker checks every argument of a declare against the queue it has: these
    # pass only because the queues are quorum queues with exactly these arguments.
    for name, arguments in expected.items():
        channel = await raw.channel()
        await channel.declare_queue(name, durable=True, arguments=dict(arguments))
        await channel.close()


# --- the open-mode flow on quorum queues -----------------------------------------------


async def test_register_and_direct_messages_on_quorum_queues(quorum: QuorumDeployment) -> None:
    await test_delivery.test_direct_messages_reach_the_recipient_both_ways(quorum)


async def test_group_messages_on_quorum_queues(quorum: QuorumDeployment) -> None:
    await test_delivery.test_group_messages_reach_every_other_member_once(quorum)


async def test_joining_and_leaving_on_quorum_queues(quorum: QuorumDeployment) -> None:
    await test_groups.test_joining_starts_delivery_and_leaving_stops_it(quorum)


async def test_direct_receipts_on_quorum_queues(quorum: QuorumDeployment) -> None:
    await test_receipts.test_direct_message_is_marked_delivered_then_read(quorum)


async def test_group_receipts_on_quorum_queues(quorum: QuorumDeployment) -> None:
    await test_receipts.test_group_receipts_count_members_and_name_them(quorum)


async def test_offline_backlog_on_quorum_queues(quorum: QuorumDeployment) -> None:
    await test_delivery.test_offline_user_gets_backlog_in_order(quorum)


async def test_standby_and_take_over_on_quorum_queues(quorum: QuorumDeployment) -> None:
    # A single active consumer on a quorum queue: the second client waits.
    await test_delivery.test_a_second_client_of_the_same_user_waits_and_takes_over(quorum)


async def test_invalid_messages_are_dead_lettered_from_a_quorum_inbox(
    quorum: QuorumDeployment, raw: AbstractRobustConnection
) -> None:
    # Into a quorum NS.dead-letters, at least once, each with its x-death.
    await test_dead_letters.test_invalid_inbox_messages_are_dead_lettered_and_delivery_carries_on(
        quorum, raw
    )


async def test_invalid_receipts_are_dead_lettered_from_a_quorum_receipts_queue(
    quorum: QuorumDeployment, raw: AbstractRobustConnection
) -> None:
    await test_dead_letters.test_invalid_receipts_are_dead_lettered_and_receipts_carry_on(
        quorum, raw
    )


# --- the other type --------------------------------------------------------------------


async def _refusal(deployment: Deployment, user: str, queue_type: QueueType) -> str:
    settings = deployment.settings(user, queue_type=queue_type)
    client = ChatClient(settings, RecordingSink())
    await client.start()
    deployment.clients.append(client)
    assert not await client.wait_first_attempt(10)
    assert client.fatal_error is not None, client.status
    assert client.status.refused == client.fatal_error
    return client.fatal_error


async def test_a_quorum_client_on_a_classic_deployment_is_told_to_match_it(
    deployment: Deployment,
) -> None:
    alice = await deployment.client("alice")
    await alice.stop()
    refusal = await _refusal(deployment, "alice", "quorum")
    # The first queue a client declares is the shared dead-letter queue.
    assert refusal.startswith(
        f"the broker's {deployment.names.dead_letters_queue} is a classic queue, but this "
        "client is set to queue_type = quorum ("
    ), refusal
    assert "set queue_type to classic" in refusal
    assert "PRECONDITION_FAILED" in refusal and "unreachable" not in refusal


async def test_a_classic_client_on_a_quorum_deployment_is_told_to_match_it(
    quorum: QuorumDeployment,
) -> None:
    await quorum.client("alice")
    # A new user's client, set up for classic queues, on the quorum deployment.
    refusal = await _refusal(quorum, "bob", "classic")
    assert refusal.startswith(
        f"the broker's {quorum.names.dead_letters_queue} is a quorum queue, but this "
        "client is set to queue_type = classic ("
    ), refusal
    assert "set queue_type to quorum" in refusal
    assert "unreachable" not in refusal


# --- storage failures on a quorum inbox ------------------------------------------------


async def test_requeued_many_times_a_message_stays_first_and_is_never_dead_lettered(
    amqp_url: str, raw: AbstractRobustConnection
) -> None:
    """The broker's side, with the protocol's own arguments: 50 hand-backs, more than
    RabbitMQ 4's default limit of 20, and the message is still there, first in line."""
    names = Names(f"t{uuid.uuid4().hex[:10]}")
    channel = await raw.channel(publisher_confirms=True)
    try:
        await declare_shared(channel, names, "quorum")
        inbox = await channel.declare_queue(
            names.inbox_queue("bob"),
            durable=True,
            arguments=dict(personal_queue_arguments(names, "quorum")),
        )
        for body in (b"first", b"second"):
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=inbox.name,
            )
        seen: list[tuple[bytes, object]] = []
        done = asyncio.Event()

        async def hand_back(message: AbstractIncomingMessage) -> None:
            seen.append((message.body, (message.headers or {}).get("x-delivery-count")))
            if len(seen) <= 50:
                await message.reject(requeue=True)
            else:
                await message.ack()
            if len(seen) == 52:
                done.set()

        consumer_channel = await raw.channel()
        await consumer_channel.set_qos(prefetch_count=1)
        queue = await consumer_channel.get_queue(inbox.name)
        await queue.consume(hand_back)
        await asyncio.wait_for(done.wait(), 30)
        await consumer_channel.close()
        assert seen[:51] == [(b"first", None), *((b"first", n) for n in range(1, 51))]
        assert seen[51] == (b"second", None)
        assert await queue_depth(raw, names.dead_letters_queue) == 0
    finally:
        for name in (names.inbox_queue("bob"), names.dead_letters_queue):
            await channel.queue_delete(name)
        for exchange in (names.messages_exchange, names.dead_exchange):
            await channel.exchange_delete(exchange)


async def test_a_long_storage_failure_does_not_dead_letter_a_message(
    quorum: QuorumDeployment, raw: AbstractRobustConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob's cache cannot store for 25 hand-backs; the DM arrives once it can again."""
    alice = await quorum.client("alice")
    bob_sink = RecordingSink()
    bob = await quorum.client("bob", bob_sink)
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")
    # The pipeline's pauses (0.5 s .. 10 s) shortened, so that 25 fit in a test.
    monkeypatch.setattr(bob.inbox, "_hand_back_delay", Backoff.stepping(0.01))
    failures_left = 25
    store_incoming = bob.store.store_incoming

    async def full_disk(*args: Any, **kwargs: Any) -> Any:
        nonlocal failures_left
        if failures_left > 0:
            failures_left -= 1
            raise StoreError("database or disk is full")
        return await store_incoming(*args, **kwargs)

    monkeypatch.setattr(bob.store, "store_incoming", full_disk)

    sent = await alice.send(Conversation.dm("bob"), "after the disk is back")
    await eventually(
        lambda: bob_sink.contents() == ["after the disk is back"], timeout=20, what="the DM"
    )
    assert bob_sink.shown[0].message_id == sent.message_id
    assert bob.inbox.counters.failures == 25
    assert any("database or disk is full" in problem for problem in bob_sink.problems)
    assert "incoming messages are being stored again" in bob_sink.problems
    names = quorum.names
    assert await queue_depth(raw, names.dead_letters_queue) == 0
    await eventually(lambda: _depth_is(raw, names.inbox_queue("bob"), 0), what="the DM to be acked")


async def _depth_is(connection: AbstractRobustConnection, name: str, wanted: int) -> bool:
    return await queue_depth(connection, name) == wanted
