"""The directory follower keeps folding after the link dies under one of its acks.

Under load (docs/performance.md, "1,000 users") some clients stopped folding the
directory stream for good, while its entries kept arriving. aiormq fails every future
of a connection that closes with `CancelledError` (a heartbeat timeout, or the
connector dropping a link whose set-up timed out), the drain future of an ack in flight
too, and the follower's loop took that for its own cancellation and ended, silently.

Here the ack is made to be in flight for certain: the link is stalled by a proxy, and
before the follower acks, a large publish on the same connection fills the socket, so
the ack waits behind it until the heartbeat gives the connection up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from chat_tui.core.directory import DirectoryFollower
from chat_tui.core.directory_snapshot import DirectorySnapshot
from chat_tui.protocol.models import DirectoryEvent
from chat_tui.protocol.outgoing import Outgoing
from chat_tui.transport.connection import Transport
from chat_tui.transport.consumers import Delivery
from tests.conftest import Deployment, eventually
from tests.faults.fault_proxy import FaultProxy

HEARTBEAT = 1
"""aiormq gives a silent link (1 + 1) * 3 = 6 s."""
FILLER_BYTES = 40 * 1024 * 1024
"""More than the client's send buffer and the proxy's receive buffer can take (4 MiB and
32 MiB at most here, `tcp_wmem`, `tcp_rmem`), so the rest waits in the client's writer,
and every frame after it."""


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[FaultProxy]:
    broker = urlsplit(amqp_url)
    fault_proxy = FaultProxy(broker.port or 5672, broker.hostname or "127.0.0.1")
    fault_proxy.start()
    yield fault_proxy
    fault_proxy.close()


@pytest.fixture
async def transport(deployment: Deployment, proxy: FaultProxy) -> AsyncIterator[Transport]:
    link = Transport(
        proxy.url(),
        deployment.names,
        "ann",
        heartbeat=HEARTBEAT,
        reconnect_interval=0.5,
    )
    deployment.users.add("ann")
    await link.connect()
    yield link
    await link.close()


async def publish(raw: AbstractRobustConnection, deployment: Deployment, *users: str) -> None:
    """Register `users` in the directory, straight to the broker (not through the proxy)."""
    channel = await raw.channel()
    try:
        exchange = await channel.get_exchange(deployment.names.messages_exchange)
        for user in users:
            out = Outgoing.directory(DirectoryEvent(event="registered", user_id=user))
            await exchange.publish(
                aio_pika.Message(out.body, message_id=out.amqp_message_id, type=out.message_type),
                routing_key=out.routing_key,
            )
    finally:
        await channel.close()


async def test_directory_is_folded_after_the_link_died_during_an_ack(
    deployment: Deployment,
    proxy: FaultProxy,
    transport: Transport,
    raw: AbstractRobustConnection,
) -> None:
    before = [f"early{i}" for i in range(20)]
    await publish(raw, deployment, *before)

    snapshot = DirectorySnapshot()
    follower = DirectoryFollower(snapshot, lambda: None)
    arrived: list[Delivery] = []

    def on_delivery(delivery: Delivery) -> None:
        arrived.append(delivery)
        follower.on_delivery(delivery)

    follower.started()
    await transport.consume_directory(on_delivery)
    # The follower is not running yet: the entries wait, unacked, in its batcher.
    await eventually(lambda: len(arrived) >= len(before), what="the first entries")

    filler_channel = await transport.open_channel()
    proxy.stall()
    filler = asyncio.create_task(
        filler_channel.default_exchange.publish(
            aio_pika.Message(b"x" * FILLER_BYTES), routing_key="nowhere", timeout=60
        )
    )
    await asyncio.sleep(0.5)  # the filler is written out as far as the socket takes it
    assert not filler.done()

    running = asyncio.create_task(follower.run())
    try:
        # The batch is folded at once; its ack waits behind the filler.
        await eventually(lambda: set(before) <= snapshot.users, what="the first fold")
        # The heartbeat gives the stalled connection up, failing the ack in flight.
        await eventually(lambda: not transport.online, timeout=15, what="the link to die")
        await asyncio.sleep(0.5)
        assert not running.done(), "the follower's loop ended with the link"
        proxy.heal()
        await eventually(lambda: transport.online, timeout=15, what="the link to return")

        await publish(raw, deployment, "later")
        await eventually(
            lambda: "later" in snapshot.users, timeout=10, what="a user registered later"
        )
    finally:
        proxy.heal()
        running.cancel()
        filler.cancel()
        for task in (running, filler):
            with contextlib.suppress(BaseException):
                await task
