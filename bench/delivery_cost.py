"""`python -m bench.delivery_cost [--users 10] [--messages 300] [--rate 20]`: the CPU
one delivery costs the clients, at a rate they keep up with.

bench.load found that 1,000 simulated users are bound by their clients' CPU. This
takes one group of `--users` members, every member a real `ChatClient` in this one
process (each with its cache, its SQLite thread and its connection, on the shared
broker in a namespace of its own, removed afterwards), and sends `--messages` group
messages from members in turn at `--rate` per second: each goes to every other member,
who stores and acks it and returns a `delivered` receipt, which its sender stores.
It reports the process's CPU time over the traffic and its settling (until every
outbox is empty), per delivery: user and system time, and the event loop's thread
apart from the SQLite threads (from /proc/self/task).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.deployment import AMQP_URL, BenchDeployment, group_with
from chat_tui.core.records import StoredMessage
from chat_tui.core.sink import Sink
from chat_tui.protocol.conversations import Conversation

GROUP = "cost"
SETTLE_TIMEOUT = 60.0


class CountingSink(Sink):
    def __init__(self) -> None:
        self.shown = 0

    async def show(self, messages: Sequence[StoredMessage]) -> None:
        self.shown += sum(1 for message in messages if not message.outgoing)


def thread_seconds() -> dict[int, float]:
    """CPU seconds (user and system) of each thread of this process, by native ID."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: dict[int, float] = {}
    for task in Path("/proc/self/task").iterdir():
        with (task / "stat").open() as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


@dataclass(frozen=True)
class Cost:
    deliveries: int
    expected: int
    wall: float
    user: float
    system: float
    loop: float
    """CPU seconds of the event loop's thread."""
    threads: float
    """CPU seconds of every other thread: the clients' SQLite threads."""

    def per_delivery_ms(self, seconds: float) -> float:
        return seconds / max(self.deliveries, 1) * 1000

    def line(self) -> str:
        total = self.user + self.system
        return (
            f"{self.deliveries} of {self.expected} deliveries in {self.wall:.1f} s; CPU per "
            f"delivery {self.per_delivery_ms(total):.2f} ms (user "
            f"{self.per_delivery_ms(self.user):.2f}, system {self.per_delivery_ms(self.system):.2f}"
            f"; event loop {self.per_delivery_ms(self.loop):.2f}, SQLite threads "
            f"{self.per_delivery_ms(self.threads):.2f})"
        )


async def measure(users: int, messages: int, rate: float, amqp_url: str) -> Cost:
    deployment = BenchDeployment(amqp_url)
    try:
        sinks = [CountingSink() for _ in range(users)]
        clients = [await deployment.client(f"member{i:02d}", sink) for i, sink in enumerate(sinks)]
        await group_with(clients[0], clients[1:], GROUP)
        for client in clients:
            await client.flush(SETTLE_TIMEOUT)
        conversation = Conversation.group(GROUP)
        expected = messages * (users - 1)
        loop_thread = threading.get_native_id()
        shown_before = sum(sink.shown for sink in sinks)
        threads_before = thread_seconds()
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        for number in range(messages):
            await clients[number % users].send(conversation, f"cost #{number}")
            await asyncio.sleep(max(0.0, started + (number + 1) / rate - time.monotonic()))
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while sum(s.shown for s in sinks) - shown_before < expected:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        # The receipts and their confirms are part of what a delivery costs.
        await asyncio.gather(*(client.flush(SETTLE_TIMEOUT) for client in clients))
        wall = time.monotonic() - started
        usage_after = resource.getrusage(resource.RUSAGE_SELF)
        threads_after = thread_seconds()
        spent = {t: s - threads_before.get(t, 0.0) for t, s in threads_after.items()}
        return Cost(
            deliveries=sum(sink.shown for sink in sinks) - shown_before,
            expected=expected,
            wall=wall,
            user=usage_after.ru_utime - usage_before.ru_utime,
            system=usage_after.ru_stime - usage_before.ru_stime,
            loop=spent.get(loop_thread, 0.0),
            threads=sum(s for t, s in spent.items() if t != loop_thread),
        )
    finally:
        await deployment.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_cost", description=__doc__)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="group messages/s in all")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--amqp-url", default=AMQP_URL)
    options = parser.parse_args()
    if options.users < 2 or options.messages < 1 or options.rate <= 0 or options.runs < 1:
        parser.error("--users must be at least 2, --messages and --runs at least 1, --rate above 0")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for _ in range(options.runs):
        cost = asyncio.run(measure(options.users, options.messages, options.rate, options.amqp_url))
        print(cost.line())


if __name__ == "__main__":
    main()
