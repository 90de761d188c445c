"""A stream that RabbitMQ lost. A node killed -9 within about a second of declaring a
stream keeps the queue's record but not the stream (RabbitMQ 3.10.8; the README's "A
queue RabbitMQ lost"): every declaration of it is then NOT_FOUND, "home node ... is down
or inaccessible", for good. The client says what that is, never that the broker is
unreachable, and the README's remedy, run as written, brings the deployment back."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Iterator

import aio_pika
import pytest

from chat_tui.protocol.names import Names
from chat_tui.protocol.queues import directory_arguments
from tests.faults.broker_node import BrokerNode, running_node
from tests.faults.world import ROOT, ChatWorld

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def node() -> Iterator[BrokerNode]:
    """This test's own node: it breaks it on purpose."""
    with running_node() as broker:
        yield broker


def lose_the_directory(world: ChatWorld) -> None:
    async def declare() -> None:
        connection = await aio_pika.connect(world.node.url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(
                Names(world.namespace).directory_stream,
                durable=True,
                arguments=directory_arguments(),
            )

    asyncio.run(declare())
    world.node.kill()  # at once: well within the second after the declaration
    world.node.start()


def readme_remedy(namespace: str) -> list[str]:
    """The README's `rabbitmqctl eval` line, for this namespace, without `rabbitmqctl`."""
    readme = (ROOT / "README.md").read_text()
    line = next(each for each in readme.splitlines() if each.startswith("rabbitmqctl eval "))
    return shlex.split(line.replace("NS.directory", f"{namespace}.directory"))[1:]


def test_a_lost_directory_stream_is_explained_and_the_readmes_remedy_works(
    world: ChatWorld,
) -> None:
    lose_the_directory(world)
    directory = Names(world.namespace).directory_stream

    refused = world.cli("alice", "create", "lobby")
    said = refused.stdout + refused.stderr
    assert refused.returncode == 1, f"the stream survived the kill, or was not needed: {said}"
    assert f"its queue {directory!r} is unavailable" in refused.stderr, said
    assert '"A queue RabbitMQ lost" in the README' in refused.stderr, said
    assert "unreachable" not in said
    # What the README has an administrator check before the remedy.
    states = dict(
        line.split("\t")[:2]
        for line in world.node.ctl("list_queues", "-q", "name", "state").splitlines()
    )
    assert states[directory] == "down", states

    assert world.node.ctl(*readme_remedy(world.namespace)).strip() == "ok"

    created = world.cli("alice", "create", "lobby")
    assert created.returncode == 0, created.stdout + created.stderr
    sent = world.cli("alice", "send", "--group", "lobby", "the directory is back")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.startswith("sent ")
