"""`python -m bench.archive_ingest [--messages N]`: how fast the archive stores a backlog.

Each round fills NS.archive with the same backlog while no worker runs, then starts 1,
2 or 4 `chat-tui archive` processes on a fresh PostgreSQL database (the shared server
on 127.0.0.1:5432) and times them from the moment all of them consume to the last
message stored (what they stored before that is left out of the count). The
baseline, in the same run and on the same backlog: a plain aio-pika consumer that only
acks (`bench.baseline.AckingConsumer`, the archive's prefetch), which is what the broker
can hand out on this machine. Each worker's CPU time (from /proc) says where the time
went: a worker that is busy all the time is its own limit, one that waits is waiting
for the database or the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractConnection

from bench.baseline import AckingConsumer
from chat_tui.archive.database import open_archive_database
from chat_tui.protocol.models import SendMessage
from chat_tui.protocol.names import Names, group_key
from chat_tui.protocol.queues import archive_queue_arguments
from chat_tui.transport.topology import declare_shared

AMQP_URL = os.environ.get("CHAT_TUI_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES = os.environ.get("CHAT_TUI_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PREFETCH = 1000
"""The archive's prefetch on NS.archive (transport/work_queues.py)."""
WORKER_COUNTS = (1, 2, 4)
WORDS: tuple[str, ...] = ("deploy", "review", "merge", "lunch", "meeting", "build", "release")
WORDS += ("ticket", "coffee", "standup", "design", "bug", "fix", "test", "docs", "server")
WORDS += ("client", "queue", "broker", "archive", "search", "history", "page", "cursor")
ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    name: str
    messages: int
    seconds: float
    cpu_seconds: float
    """CPU time of the consumers (workers, or the bench process for the baseline)."""
    broker_cpu: float
    database_cpu: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def per_message(self, cpu: float) -> float:
        """CPU microseconds per message stored (or acked)."""
        return cpu / self.messages * 1e6

    def busy(self, cpu: float) -> float:
        """CPU seconds per wall second: 1.0 is one core kept busy."""
        return cpu / self.seconds


def backlog(count: int) -> list[SendMessage]:
    """Chat messages in 50 groups, a sentence of a few words each."""
    rng = random.Random(12)
    start = datetime.now(UTC) - timedelta(hours=1)
    return [
        SendMessage(
            message_id=uuid.uuid4(),
            sender_id=f"user{rng.randrange(200)}",
            group_id=f"group{rng.randrange(50)}",
            content=" ".join(rng.choices(WORDS, k=rng.randint(4, 20))),
            timestamp=start + timedelta(milliseconds=i),
        )
        for i in range(count)
    ]


async def fill(channel: AbstractChannel, names: Names, messages: list[SendMessage]) -> None:
    """Publish the backlog, persistent and confirmed, a thousand at a time."""
    exchange = await channel.get_exchange(names.messages_exchange)
    for start in range(0, len(messages), 1000):
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(m.to_body(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    group_key(m.group_id or ""),
                )
                for m in messages[start : start + 1000]
            )
        )


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat from its fourth field (ppid) on: the name may hold spaces."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1:]


def cpu_seconds(pid: int) -> float:
    try:
        fields = _stat(pid)
    except OSError:  # gone meanwhile
        return 0.0
    return (int(fields[10]) + int(fields[11])) / CLOCK_TICKS


def family(parent: int) -> list[int]:
    """`parent` and its children: a PostgreSQL server is its postmaster's children."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int(_stat(int(entry.name))[0]) == parent:
                    children.append(int(entry.name))
    return [parent, *children]


def shared_broker() -> int:
    """The shared RabbitMQ node: of the beam.smp processes here (tests start private
    nodes too), the one that started first."""
    beams = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _comm(entry) == "beam.smp"
    ]
    return min(beams, key=_started_at)


def _started_at(pid: int) -> float:
    try:
        return int(_stat(pid)[18])
    except OSError:  # gone meanwhile
        return float("inf")


def _comm(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class CpuWatch:
    """CPU seconds of the consumers, the broker and the database over one round."""

    consumers: list[int]
    database: int
    """The postmaster's PID."""
    broker: int = field(default_factory=shared_broker)

    def read(self) -> tuple[float, float, float]:
        return (
            sum(cpu_seconds(pid) for pid in self.consumers),
            cpu_seconds(self.broker),
            sum(cpu_seconds(pid) for pid in family(self.database)),
        )


async def postmaster() -> int:
    """The PID of the PostgreSQL server the workers use: the parent of our backend."""
    connection = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        backend = int(await connection.fetchval("SELECT pg_backend_pid()"))
        return int(_stat(backend)[0])  # while the backend lives
    finally:
        await connection.close()


async def baseline(
    connection: AbstractConnection, names: Names, count: int, database: int
) -> Round:
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    queue = await channel.get_queue(names.archive_queue)
    consumer = AckingConsumer(count)
    watch = CpuWatch([os.getpid()], database)
    before = watch.read()
    started = time.perf_counter()
    tag = await queue.consume(consumer.on_message)
    await consumer.done.wait()
    seconds = consumer.finished_at - started
    after = watch.read()
    await queue.cancel(tag)
    await channel.close()
    used = [b - a for a, b in zip(before, after, strict=True)]
    return Round("plain aio-pika consumer, ack only", count, seconds, *used)


async def poll(read: Callable[[], Awaitable[int]], *, at_least: int, interval: float) -> int:
    """Read until the value is at least `at_least`; the value then."""
    while True:
        value = await read()
        if value >= at_least:
            return value
        await asyncio.sleep(interval)


async def consumers(connection: AbstractConnection, names: Names) -> int:
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(names.archive_queue, passive=True)
        assert queue.declaration_result is not None
        return queue.declaration_result.consumer_count or 0
    finally:
        await channel.close()


async def workers_round(
    connection: AbstractConnection, workers: int, count: int, names: Names, database_pid: int
) -> Round:
    """`workers` archive processes on a fresh database, draining the backlog."""
    database_name = f"bench_archive_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{POSTGRES}/postgres")
    await admin.execute(f'CREATE DATABASE "{database_name}"')
    url = f"{POSTGRES}/{database_name}"
    database = open_archive_database(url)
    await database.open()  # the schema, before the clock starts
    processes: list[asyncio.subprocess.Process] = []
    try:
        env = {
            **os.environ,
            "CHAT_TUI_AMQP_URL": AMQP_URL,
            "CHAT_TUI_NAMESPACE": names.namespace,
            "CHAT_TUI_ARCHIVE_DB": url,
            "CHAT_TUI_CONFIG_FILE": "/nonexistent/chat-tui-bench.toml",
        }
        for _ in range(workers):
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "chat_tui",
                    "archive",
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        # Timed from the moment every worker consumes (they start a second or so apart):
        # what they store together, to the last message.
        await poll(lambda: consumers(connection, names), at_least=workers, interval=0.005)
        first = await database.count()
        started = time.perf_counter()
        watch = CpuWatch([p.pid for p in processes], database_pid)
        before = watch.read()
        stored = await poll(database.count, at_least=count, interval=0.02)
        seconds = time.perf_counter() - started
        used = [b - a for a, b in zip(before, watch.read(), strict=True)]
        assert stored == count, f"{stored} stored of {count}"
        label = f"{workers} archive worker{'s' if workers > 1 else ''}, PostgreSQL"
        return Round(label, count - first, seconds, *used)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        await database.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')
        await admin.close()


async def measure(count: int) -> list[Round]:
    names = Names(f"bench{uuid.uuid4().hex[:8]}")
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        messages_exchange = await declare_shared(channel, names)
        queue = await channel.declare_queue(
            names.archive_queue, durable=True, arguments=dict(archive_queue_arguments(names))
        )
        await queue.bind(messages_exchange, routing_key="group.#")
        rounds: list[Round] = []
        messages = backlog(count)
        database_pid = await postmaster()
        for workers in (0, *WORKER_COUNTS):
            await fill(channel, names, messages)
            print(f"-- {workers or 'baseline'}: {count} messages queued", file=sys.stderr)
            if workers == 0:
                rounds.append(await baseline(connection, names, count, database_pid))
            else:
                rounds.append(await workers_round(connection, workers, count, names, database_pid))
        return rounds
    finally:
        with contextlib.suppress(Exception):
            cleanup = await connection.channel()
            for queue_name in (
                names.archive_queue,
                names.archive_requests_queue,
                names.directory_stream,
                names.dead_letters_queue,
            ):
                await cleanup.queue_delete(queue_name)
            await cleanup.exchange_delete(names.messages_exchange)
            await cleanup.exchange_delete(names.dead_exchange)
        await connection.close()


def report(rounds: list[Round]) -> str:
    base = rounds[0].rate
    lines = [
        "| consumer | messages | seconds | messages/s | vs. baseline "
        "| cores busy: consumers | broker | PostgreSQL | CPU µs per message: consumers "
        "| broker | PostgreSQL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rounds:
        lines.append(
            f"| {r.name} | {r.messages:,} | {r.seconds:.2f} | {r.rate:,.0f} | "
            f"{r.rate / base:.2f} | {r.busy(r.cpu_seconds):.2f} | {r.busy(r.broker_cpu):.2f} "
            f"| {r.busy(r.database_cpu):.2f} | {r.per_message(r.cpu_seconds):.0f} "
            f"| {r.per_message(r.broker_cpu):.0f} | {r.per_message(r.database_cpu):.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.archive_ingest", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000, help="the backlog of each round")
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load {load} at the start", file=sys.stderr)
    rounds = asyncio.run(measure(args.messages))
    print(report(rounds))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load {load} at the end", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
