"""Metric 3: backlog drain, and the longest event-loop stall during it.

N valid group messages wait in bob's and dave's inboxes and, through the same binding,
in a plain queue with the inbox's arguments (one publish fills all three).
- chat-tui: the time from bob's `ChatClient.start()` until all N are stored, shown (to
  a sink that only counts) and acked;
- in the app: dave opens the Textual app (headless `run_test`, 120x40, the group open,
  connected); the time from creating `ChatApp` until all N are stored, drawn and acked;
- baseline: from a plain aio-pika connect until a consumer acked all N, one by one.
A ticker task on the same event loop (the app's, for the app) measures the longest
stall a UI on that loop sees.
"""

from __future__ import annotations

import asyncio
import time

from bench.bodies import group_bodies
from bench.deployment import BenchDeployment, group_with, until
from bench.probe import AckWatch, ProbeSink, watch_acks
from bench.report import Goal, Result
from bench.sender import open_exchange, publish_all
from bench.sizes import Sizes
from bench.stall import StallMeter
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.names import group_key

GROUP = "drain"
SENDER = "carol"
APP_USER = "dave"
FILL_CHUNK = 5_000
SETTLE_SECONDS = 10.0
"""A pause between the fill and the first drain. Right after a fill of 3 x N persistent
messages the broker is still writing them out: measured at 100,000, whichever drain
came first cost the broker 78 us of CPU per message instead of 45, and ran slower."""


async def fill(deployment: BenchDeployment, count: int) -> None:
    """Publish the backlog once; the topic exchange puts it in both queues."""
    connection, exchange = await open_exchange(deployment.amqp_url, deployment.names)
    try:
        for start in range(0, count, FILL_CHUNK):
            bodies = group_bodies(SENDER, GROUP, min(FILL_CHUNK, count - start))
            await publish_all(exchange, group_key(GROUP), bodies, window=1000)
    finally:
        await connection.close()


async def chat_tui_drain(deployment: BenchDeployment, count: int) -> tuple[float, StallMeter]:
    """(seconds to drain, the stalls of the loop meanwhile)."""
    sink = ProbeSink()
    async with StallMeter() as meter:
        started = time.perf_counter()
        bob = await deployment.client("bob", sink, online=False)
        watch = AckWatch(count)
        watch_acks(bob, watch)
        await asyncio.wait_for(watch.done.wait(), 900)
    await deployment.stop_client(bob)
    return watch.finished_at - started, meter


async def app_drain(deployment: BenchDeployment, count: int) -> tuple[float, StallMeter]:
    """Dave's Textual app drains his inbox; the stalls are those of the app's loop."""
    from chat_tui.core.receiver import InboxPipeline, Settlement
    from chat_tui.tui.app import ChatApp

    watch = AckWatch(count)
    settle = InboxPipeline.settle

    async def settle_and_count(pipeline: InboxPipeline, settlement: Settlement) -> None:
        await settle(pipeline, settlement)
        watch.batch_done(len(settlement.deliveries))

    # The app creates its client inside on_mount, so hook the class for this run only.
    InboxPipeline.settle = settle_and_count  # type: ignore[method-assign,assignment]
    try:
        async with StallMeter() as meter:
            started = time.perf_counter()
            app = ChatApp(
                deployment.settings(APP_USER), open_conversation=Conversation.group(GROUP)
            )
            async with app.run_test(size=(120, 40)):
                await asyncio.wait_for(watch.done.wait(), 900)
    finally:
        InboxPipeline.settle = settle  # type: ignore[method-assign]
    return watch.finished_at - started, meter


async def plain_drain(deployment: BenchDeployment, count: int) -> tuple[float, StallMeter]:
    async with StallMeter() as meter:
        started = time.perf_counter()
        connection = await deployment.connect()
        try:
            consumer = await deployment.plain_consumer(connection, "drain", [GROUP], count)
            await asyncio.wait_for(consumer.done.wait(), 900)
        finally:
            await connection.close()
    return consumer.finished_at - started, meter


async def measure(deployment: BenchDeployment, sizes: Sizes) -> list[Result]:
    count = sizes.drain_messages
    await deployment.register(SENDER)
    # bob and dave join, then go away; the plain queue is bound to the same group key.
    bob = await deployment.client("bob")
    dave = await deployment.client(APP_USER)
    await group_with(bob, [dave], GROUP)
    for client in (bob, dave):
        await client.flush(30)
        await deployment.stop_client(client)
    channel_owner = await deployment.connect()
    await deployment.baseline_queue(await channel_owner.channel(), "drain", [GROUP])
    await channel_owner.close()
    await fill(deployment, count)
    for queue in (
        deployment.names.inbox_queue("bob"),
        deployment.names.inbox_queue(APP_USER),
        f"{deployment.namespace}.baseline.drain",
    ):
        await until(
            lambda queue=queue: _depth_is(deployment, queue, count),  # type: ignore[misc]
            f"{count} messages in {queue}",
        )
    await asyncio.sleep(SETTLE_SECONDS)
    chat_seconds, chat_stall = await chat_tui_drain(deployment, count)
    app_seconds, app_stall = await app_drain(deployment, count)
    plain_seconds, plain_stall = await plain_drain(deployment, count)
    ms = 1000.0
    note = (
        f"{count:,} messages; chat-tui {chat_seconds:.2f} s, plain {plain_seconds:.2f} s "
        f"(ratio is drain speed, chat-tui / plain)"
    )

    def stall_note(meter: StallMeter) -> str:
        return (
            f"the longest gap used {meter.longest_cpu * ms:.0f} ms of loop-thread CPU, "
            f"p99 gap {meter.percentile(99) * ms:.1f} ms; plain: "
            f"{plain_stall.longest_cpu * ms:.0f} ms, p99 {plain_stall.percentile(99) * ms:.1f} ms"
        )

    return [
        Result(
            "backlog drain",
            count / chat_seconds,
            "msg/s",
            count / plain_seconds,
            Goal("ratio", ">=", 1.0),
            note=note,
        ),
        Result(
            "drain: longest loop stall",
            chat_stall.longest * ms,
            "ms",
            plain_stall.longest * ms,
            Goal("value", "<", 100, "ms"),
            note=stall_note(chat_stall),
        ),
        Result(
            "backlog drain, in the app",
            count / app_seconds,
            "msg/s",
            count / plain_seconds,
            note=f"{app_seconds:.2f} s, from creating ChatApp",
        ),
        Result(
            "drain in the app: longest loop stall",
            app_stall.longest * ms,
            "ms",
            plain_stall.longest * ms,
            Goal("value", "<", 100, "ms"),
            note=stall_note(app_stall),
        ),
    ]


async def _depth_is(deployment: BenchDeployment, queue: str, count: int) -> bool:
    return await deployment.queue_depth(queue) >= count
