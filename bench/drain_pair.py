"""A backlog drain, chat-tui and plain aio-pika back to back, with CPU accounting:
`python -m bench.drain_pair [COUNT] [--plain-first] [--settle SECONDS]`.

The suite's drain metric gives rates; this says where the CPU went, which is what the
drain analysis in docs/performance.md quotes: per message, the loop thread's CPU
(`time.thread_time`), the other threads' (the process's CPU minus the loop's: the SQLite
thread), and the broker's, when it runs on this machine (`/proc/<beam.smp pid>/stat`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from collections.abc import Awaitable, Callable

from bench import drain
from bench.deployment import BenchDeployment, group_with, until
from bench.stall import StallMeter


def broker_cpu_seconds() -> float:
    """User + system CPU of the local RabbitMQ (0 if there is none)."""
    pids = subprocess.run(["pgrep", "beam.smp"], capture_output=True, text=True).stdout.split()
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def prepare(deployment: BenchDeployment, count: int) -> None:
    """bob in the group, a plain queue bound beside his inbox, `count` in both."""
    await deployment.register(drain.SENDER)
    bob = await deployment.client("bob")
    await group_with(bob, [], drain.GROUP)
    await bob.flush(30)
    await deployment.stop_client(bob)
    owner = await deployment.connect()
    await deployment.baseline_queue(await owner.channel(), "drain", [drain.GROUP])
    await owner.close()
    await drain.fill(deployment, count)
    for queue in (deployment.names.inbox_queue("bob"), f"{deployment.namespace}.baseline.drain"):
        await until(
            lambda queue=queue: drain._depth_is(deployment, queue, count),  # type: ignore[misc]
            f"{count} messages in {queue}",
        )


async def measured(
    name: str, count: int, run: Callable[[], Awaitable[tuple[float, StallMeter]]]
) -> float:
    broker, process, loop_thread = broker_cpu_seconds(), time.process_time(), time.thread_time()
    seconds, stalls = await run()
    loop_cpu = time.thread_time() - loop_thread
    other_cpu = time.process_time() - process - loop_cpu
    broker = broker_cpu_seconds() - broker
    us = 1e6 / count
    print(
        f"{name:8s} {count / seconds:8,.0f} msg/s  loop thread {loop_cpu * us:4.0f} us/msg  "
        f"other threads {other_cpu * us:3.0f} us/msg  broker {broker * us:3.0f} us/msg  "
        f"longest stall {stalls.longest * 1000:.0f} ms",
        flush=True,
    )
    return count / seconds


async def main(count: int, plain_first: bool, settle: float) -> None:
    deployment = BenchDeployment()
    try:
        await prepare(deployment, count)
        await asyncio.sleep(settle)
        runs = [
            ("chat-tui", lambda: drain.chat_tui_drain(deployment, count)),
            ("plain", lambda: drain.plain_drain(deployment, count)),
        ]
        if plain_first:
            runs.reverse()
        rates = {name: await measured(name, count, run) for name, run in runs}
        print(f"ratio    {rates['chat-tui'] / rates['plain']:.2f}")
    finally:
        await deployment.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("count", type=int, nargs="?", default=30_000)
    parser.add_argument("--plain-first", action="store_true")
    parser.add_argument("--settle", type=float, default=drain.SETTLE_SECONDS)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.plain_first, args.settle))
