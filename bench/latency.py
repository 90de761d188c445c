"""Metric 1: end-to-end latency, from alice's `send` to bob's sink `show`.

chat-tui: alice's client stores the message in her outbox and publishes it; bob's
client receives, stores it and hands it to his sink. One message at a time, DMs and
group messages alternating, each confirmed to alice before the next.
Baseline: plain aio-pika publishing a persistent message of the same size with a
confirm, and a consumer that acks it; the time until that ack.
Both senders run in a process of their own (bench/latency_peer.py), as a sender does.
"""

from __future__ import annotations

import asyncio
import statistics

from bench.deployment import BenchDeployment, group_with
from bench.latency_peer import LatencyPeer
from bench.probe import ProbeSink
from bench.report import Goal, Result
from bench.sizes import Sizes

PAUSE = 0.02
"""Between samples, so that receipts and bookkeeping of one do not delay the next."""
WARM_UP = 6
GROUP = "latency"
BASELINE_GROUP = "latency-base"
P50_GOAL = Goal("ratio", "<=", 1.3)
"""Issue 11: at most 1.3 times plain aio-pika's, with the local commit on each side kept."""


def percentile(samples: list[float], percent: int) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[percent - 1]


async def chat_tui_latencies(deployment: BenchDeployment, count: int) -> dict[str, list[float]]:
    sink = ProbeSink(record_arrivals=True)
    alice = await deployment.client("alice")
    bob = await deployment.client("bob", sink)
    await group_with(alice, [bob], GROUP)
    await alice.flush(30)
    # alice goes on in a process of her own, from the same cache.
    await deployment.stop_client(alice)
    samples: dict[str, list[float]] = {"dm": [], "group": []}
    peer = LatencyPeer(
        "chat",
        deployment.amqp_url,
        deployment.namespace,
        "--user=alice",
        f"--group={GROUP}",
        "--peer=bob",
        f"--data-dir={deployment.data_dir}",
    )
    async with peer:
        for index in range(count + WARM_UP):
            kind = "dm" if index % 2 else "group"
            started, message_id = await peer.send(kind, index)
            arrived = await asyncio.wait_for(sink.wait_for(message_id), 30)
            await peer.wait_settled()
            if index >= WARM_UP:
                samples[kind].append(arrived - started)
            await asyncio.sleep(PAUSE)
    await deployment.stop_client(bob)
    return samples


async def plain_latencies(deployment: BenchDeployment, count: int) -> list[float]:
    consumer_connection = await deployment.connect()
    try:
        consumer = await deployment.plain_consumer(
            consumer_connection, "latency", [BASELINE_GROUP], count + WARM_UP
        )
        consumer.record_arrivals = True
        samples: list[float] = []
        peer = LatencyPeer(
            "plain",
            deployment.amqp_url,
            deployment.namespace,
            "--user=alice",
            f"--group={BASELINE_GROUP}",
        )
        async with peer:
            for index in range(count + WARM_UP):
                started, body = await peer.send("plain", index)
                arrived = await asyncio.wait_for(consumer.wait_for(bytes.fromhex(body)), 30)
                await peer.wait_settled()
                if index >= WARM_UP:
                    samples.append(arrived - started)
                await asyncio.sleep(PAUSE)
        return samples
    finally:
        await consumer_connection.close()


async def measure(deployment: BenchDeployment, sizes: Sizes) -> list[Result]:
    chat = await chat_tui_latencies(deployment, sizes.latency_samples)
    plain = await plain_latencies(deployment, sizes.latency_samples)
    both = chat["dm"] + chat["group"]
    ms = 1000.0
    plain_p50 = statistics.median(plain) * ms
    note = f"{len(both)} chat-tui samples (half DM, half group), {len(plain)} plain"
    return [
        Result("latency p50", statistics.median(both) * ms, "ms", plain_p50, P50_GOAL, note=note),
        Result("latency p99", percentile(both, 99) * ms, "ms", percentile(plain, 99) * ms),
        Result("latency p50, DM", statistics.median(chat["dm"]) * ms, "ms", plain_p50),
        Result("latency p50, group", statistics.median(chat["group"]) * ms, "ms", plain_p50),
    ]
