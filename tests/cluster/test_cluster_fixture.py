"""The test cluster itself: three nodes in one cluster, listening on the loopback only, a
quorum queue that outlives its leader's node, and a killed node that comes back."""

from __future__ import annotations

import re
import subprocess
import uuid

import aio_pika
import pytest

from tests.cluster.cluster import Cluster

pytestmark = pytest.mark.timeout(300)


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket that process PID listens on."""
    lines = subprocess.run(
        ["ss", "-Hltnp"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    found = []
    for line in lines:
        if f"pid={pid}," not in line:
            continue
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        found.append((address, int(port)))
    return found


def test_three_nodes_form_one_cluster(cluster: Cluster) -> None:
    assert cluster.running_names() == set(cluster.names())
    assert all(re.fullmatch(r"chatclu-[0-9a-f]{8}-\d@localhost", n) for n in cluster.names())
    assert len({node.port for node in cluster.nodes}) == 3


def test_nodes_listen_on_the_loopback_only(cluster: Cluster) -> None:
    first, last = (int(p) for p in cluster.nodes[0].stream_range.strip("{}").split(","))
    for node in cluster.nodes:
        beam = node.beam_pid()
        assert beam is not None
        listening = listening_addresses(beam)
        ports = {port for _, port in listening}
        assert {node.port, node.dist_port} <= ports, listening
        # osiris listens on all interfaces, within the cluster's own range (see cluster.py).
        elsewhere = [(a, p) for a, p in listening if a != "127.0.0.1" and not first <= p < last]
        assert elsewhere == [], f"{node.name} listens beyond the loopback: {elsewhere}"


async def test_quorum_queue_keeps_its_messages_when_its_leaders_node_is_killed(
    cluster: Cluster,
) -> None:
    queue_name = f"clu-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(cluster.url(0))
    async with connection:
        channel = await connection.channel()
        # A quorum queue is led, by default, by the node its declaring client is on.
        await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        await channel.default_exchange.publish(
            aio_pika.Message(b"kept", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue_name,
        )
    assert cluster.leader_of(queue_name) == 0
    cluster.kill(0)
    assert not cluster.nodes[0].running
    assert cluster.leader_of(queue_name) in (1, 2)
    connection = await aio_pika.connect(cluster.url(1))
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        message = await queue.get(timeout=10)
        assert message is not None and message.body == b"kept"
        await message.ack()
        await queue.delete(if_unused=False, if_empty=False)
    took = cluster.start_node(0)
    assert cluster.running_names() == set(cluster.names())
    assert took < 90
