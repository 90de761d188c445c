"""Metric 6: fan-out to one group of M members, each with its own inbox and client.

A sender in another process publishes N valid messages to the group as fast as
confirms allow. chat-tui: M ChatClients (one connection and one cache each, all in
this process), members of the group. Baseline: M plain aio-pika connections, each
consuming a queue like an inbox bound to the group key and acking each message.
The rate is N over the time from the sender's start until every member acked all N.
"""

from __future__ import annotations

import asyncio

from bench.deployment import BenchDeployment, group_with
from bench.probe import AckWatch, ProbeSink, watch_acks
from bench.report import Result
from bench.sender import SenderProcess
from bench.sizes import Sizes

GROUP = "fanout"
BASELINE_GROUP = "fanout-base"
SENDER = "carol"


def member(index: int) -> str:
    return f"member{index:02d}"


async def chat_tui_rate(deployment: BenchDeployment, members: int, count: int) -> float:
    clients = await asyncio.gather(
        *(deployment.client(member(i), ProbeSink()) for i in range(members))
    )
    await group_with(clients[0], clients[1:], GROUP)
    watches = [AckWatch(count) for _ in clients]
    for client, watch in zip(clients, watches, strict=True):
        watch_acks(client, watch)
    sender = SenderProcess(deployment.amqp_url, deployment.namespace, GROUP, SENDER, count)
    started, _ = await sender.run_until(
        lambda: asyncio.gather(*(w.done.wait() for w in watches)), 900
    )
    finished = max(w.finished_at for w in watches)
    await asyncio.gather(*(deployment.stop_client(c) for c in clients))
    return count / (finished - started)


async def plain_rate(deployment: BenchDeployment, members: int, count: int) -> float:
    connections = await asyncio.gather(*(deployment.connect() for _ in range(members)))
    try:
        consumers = [
            await deployment.plain_consumer(connection, f"fanout.{index}", [BASELINE_GROUP], count)
            for index, connection in enumerate(connections)
        ]
        sender = SenderProcess(
            deployment.amqp_url, deployment.namespace, BASELINE_GROUP, SENDER, count
        )
        started, _ = await sender.run_until(
            lambda: asyncio.gather(*(c.done.wait() for c in consumers)), 900
        )
        return count / (max(c.finished_at for c in consumers) - started)
    finally:
        await asyncio.gather(*(c.close() for c in connections))


async def measure(deployment: BenchDeployment, sizes: Sizes) -> list[Result]:
    members, count = sizes.fanout_members, sizes.fanout_messages
    await deployment.register(SENDER)
    chat = await chat_tui_rate(deployment, members, count)
    plain = await plain_rate(deployment, members, count)
    note = (
        f"{members} members x {count} messages = {members * count:,} deliveries; "
        f"msg/s is messages delivered to every member"
    )
    return [Result("fan-out", chat, "msg/s", plain, note=note)]
