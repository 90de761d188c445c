"""The archive's intake through the real broker, on both databases: every group message
and DM is stored once and acked only after the commit; invalid bodies are
dead-lettered; nothing stops the worker."""

from __future__ import annotations

import json
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelPreconditionFailed

from chat_tui.protocol.names import group_key, user_key
from chat_tui.protocol.queues import archive_queue_arguments
from tests.archive.service_world import (
    ArchiveWorld,
    archive_world,
    body_of,
    chat,
    spaced,
)
from tests.conftest import closed_port_url, eventually


async def test_every_group_message_and_dm_is_stored_once_and_acked(world: ArchiveWorld) -> None:
    await world.start_worker()
    messages = [*spaced(300, "alice", "lobby"), chat("alice", to="bob", content="psst")]
    await world.send(messages)
    # A copy of each of the first 50 (a sender's outbox publishes again after a
    # reconnect, under the same message_id).
    await world.send(messages[:50])
    await eventually(lambda: world.holds(len(messages)), what="every message stored")
    await eventually(world.drained, what="the queue drained")
    await world.stop_workers()
    # Stopped: whatever was delivered and not acked would be back in the queue now.
    assert await world.depth(world.names.archive_queue) == 0
    assert await world.stored() == len(messages)


async def test_messages_published_while_no_archive_runs_wait_and_are_stored(
    world: ArchiveWorld,
) -> None:
    worker = await world.start_worker()  # the first start declares NS.archive
    await worker.stop()
    messages = spaced(120, "alice", "lobby")
    await world.send(messages)
    assert await world.depth(world.names.archive_queue) == len(messages)
    assert await world.stored() == 0

    await world.start_worker()
    await eventually(lambda: world.holds(len(messages)), what="the backlog stored")


async def test_invalid_bodies_are_dead_lettered_and_the_worker_goes_on(world: ArchiveWorld) -> None:
    await world.start_worker()
    good = chat("alice", group="lobby")
    bad: list[tuple[bytes, str]] = [
        (b"not JSON at all", group_key("lobby")),
        (b'{"type": "SEND_MESSAGE", "content": "\xff"}', group_key("lobby")),
        (body_of(chat("alice", group="lobby"), content=""), group_key("lobby")),
        (body_of(chat("alice", group="lobby"), message_id="42"), group_key("lobby")),
        # The routing key must agree with the body: no message can claim a group it
        # was not routed through, nor a DM for someone else.
        (chat("alice", group="lobby").to_body(), group_key("elsewhere")),
        (chat("alice", to="bob").to_body(), user_key("carol")),
        (json.dumps({"type": "RECEIVE_MESSAGE"}).encode(), user_key("bob")),
    ]
    for body, key in bad:
        await world.publish(body, key)
    await world.send([good])

    async def settled() -> bool:
        return await world.stored() == 1 and await world.depth(world.names.archive_queue) == 0

    await eventually(settled, what="the good message stored and the bad ones settled")
    dead: list[bytes] = []

    async def all_dead() -> bool:
        dead.extend(await world.dead_letters())
        return len(dead) == len(bad)

    await eventually(all_dead, what="every invalid body in NS.dead-letters")
    assert sorted(dead) == sorted(body for body, _ in bad)
    # Still storing.
    await world.send([chat("bob", group="lobby")])

    await eventually(lambda: world.holds(2), what="a later message stored")


async def test_a_later_protocol_versions_message_is_acked_and_ignored(world: ArchiveWorld) -> None:
    await world.start_worker()
    later = {"type": "REACTION", "protocol_version": 3, "emoji": "+1"}
    await world.publish(json.dumps(later).encode(), group_key("lobby"))
    await world.send([chat("alice", group="lobby")])

    async def settled() -> bool:
        return await world.stored() == 1 and await world.depth(world.names.archive_queue) == 0

    await eventually(settled, what="the queue settled")
    assert await world.dead_letters() == []


async def test_on_a_cluster_layout_the_archive_queue_is_quorum_and_works_the_same(
    amqp_url: str, tmp_path: Path
) -> None:
    async with archive_world(
        amqp_url, tmp_path, str(tmp_path / "archive.sqlite3"), queue_type="quorum"
    ) as world:
        await world.start_worker()
        await world.send(spaced(50, "alice", "lobby"))
        await world.publish(b"not a message", group_key("lobby"))
        await eventually(lambda: world.holds(50), what="the messages stored")

        async def one_dead() -> bool:
            return len(await world.dead_letters()) == 1

        await eventually(one_dead, what="the bad body dead-lettered from a quorum queue")
        # The queue is the quorum one: declaring it as classic is refused.
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            with pytest.raises(ChannelPreconditionFailed, match="inequivalent arg"):
                await channel.declare_queue(
                    world.names.archive_queue,
                    durable=True,
                    arguments=dict(archive_queue_arguments(world.names, "classic")),
                )
        finally:
            await connection.close()


async def test_a_worker_given_several_nodes_uses_the_first_that_answers(
    world: ArchiveWorld,
) -> None:
    # A cluster's URL list whose first node is down: the worker goes on to the next.
    await world.start_worker(amqp_url=f"{closed_port_url()},{world.amqp_url}")
    await world.send(spaced(20, "alice", "lobby"))
    await eventually(lambda: world.holds(20), what="the messages stored")
