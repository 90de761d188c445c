"""One worker process of a load run: its share of the users, each a real `ChatClient`
with its own cache and connection, driven by the parent through a pipe.

The parent sends one command at a time and waits for every worker's answer, so that the
phases (register, create, join, start, ready, traffic, stop) are barriers across the processes.
Each message's content carries the `time.monotonic()` of its send; monotonic time is one
clock for every process of the machine, so a recipient in another process measures the
latency from send to stored (its sink's `show`, which the core calls after storing).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.load.plan import LoadPlan
from bench.load.usage import rss_bytes
from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.core.errors import ChatError
from chat_tui.core.records import StoredMessage
from chat_tui.core.sink import Sink
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.queues import QueueType

CONCURRENT_STARTS = 20
"""Clients connecting at once per worker: more only queue up on the broker's accepts."""
SETUP_TIMEOUT = 900.0


@dataclass(frozen=True)
class WorkerConfig:
    worker: int
    plan: LoadPlan
    namespace: str
    data_dir: Path
    queue_type: QueueType
    urls: dict[int, str]
    """The `amqp_url` of each of this worker's users, by user index."""


def shown_file(data_dir: Path, user: str) -> Path:
    """What a user's sink was handed, one JSON object a line, as `tail --json` prints
    them: the fault suite's checker reads both the same way."""
    return data_dir / f"shown-{user}.jsonl"


class Arrivals:
    """Every message handed to any sink of this worker: (send time, arrival time), and
    what each user was shown, for the checker."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []
        self.shown: dict[str, list[dict[str, str]]] = {}
        self.problems: list[str] = []


class LoadSink(Sink):
    def __init__(self, user: str, arrivals: Arrivals) -> None:
        self.user = user
        self.arrivals = arrivals
        self.shown = arrivals.shown.setdefault(user, [])

    async def show(self, messages: Sequence[StoredMessage]) -> None:
        now = time.monotonic()
        for message in messages:
            if message.outgoing:
                continue
            self.shown.append(
                {
                    "message_id": message.message_id,
                    "sender_id": message.sender_id,
                    "conversation": message.conversation.key,
                    "content": message.content,
                }
            )
            sent_at = sent_time(message.content)
            if sent_at is not None:
                self.arrivals.times.append((sent_at, now))

    def problem(self, text: str) -> None:
        self.arrivals.problems.append(f"{self.user}: {text}")


def content_at(sent_at: float, user: str, number: int) -> str:
    return f"t={sent_at:.6f} from {user} #{number}"


def sent_time(content: str) -> float | None:
    head = content.split(" ", 1)[0]
    if not head.startswith("t="):
        return None
    try:
        return float(head[2:])
    except ValueError:
        return None


async def bounded(limit: int, jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


STALL_TIMEOUT = 120.0
"""Seconds a client may take to see what the directory stream already holds."""
ATTEMPTS = 3


class StalledError(RuntimeError):
    """A client did not see directory events that the stream holds. Its follower's loop
    used to end with a link closed under an ack (docs/performance.md, "1,000 users",
    fixed in 583581d); the restarts stay, counted, as the check that it does not again."""


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + STALL_TIMEOUT
    while not await check():
        if time.monotonic() > deadline:
            raise StalledError(f"timed out after {STALL_TIMEOUT:g} s waiting for {what}")
        await asyncio.sleep(0.2)


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.plan = config.plan
        self.indices = self.plan.indices_of(config.worker)
        self.members = self.plan.members()
        self.arrivals = Arrivals()
        self.clients: dict[int, ChatClient] = {}
        self.chance = random.Random(config.worker)
        self.sent = 0
        self.stalls = 0
        """Clients restarted because they did not catch up with the directory."""

    def settings(self, index: int) -> Settings:
        return Settings(
            user=self.plan.user(index),
            amqp_url=self.config.urls[index],
            namespace=self.config.namespace,
            data_dir=self.config.data_dir,
            queue_type=self.config.queue_type,
        )

    async def online(self, index: int) -> ChatClient:
        user = self.plan.user(index)
        client = ChatClient(self.settings(index), LoadSink(user, self.arrivals))
        await client.start()
        if not await client.wait_online(SETUP_TIMEOUT):
            await client.stop()
            raise RuntimeError(f"{user} did not come online: {client.status.error}")
        return client

    async def visit(self, index: int, errand: Callable[[ChatClient, str], Awaitable[None]]) -> None:
        """A short session: online, the errand, everything it queued confirmed, offline.

        The set-up runs in such sessions, a few users at a time, because a directory
        event reaches every client that is online: with all of them online, a thousand
        registrations and joins would be a million one-event batches, each a SQLite
        transaction; a client that starts later reads the same events in big batches."""
        for attempt in range(1, ATTEMPTS + 1):
            client = await self.online(index)
            try:
                await errand(client, self.group(index))
                if not await client.flush(SETUP_TIMEOUT):
                    raise RuntimeError(f"{client.me}'s outbox was not confirmed")
                return
            except StalledError as exc:
                self.stalled(exc, attempt)
            finally:
                await client.stop()

    def stalled(self, error: StalledError, attempt: int) -> None:
        """Count a stall and start that client again, up to ATTEMPTS times."""
        self.stalls += 1
        self.arrivals.problems.append(f"attempt {attempt}: {error}")
        if attempt == ATTEMPTS:
            raise error

    async def register(self) -> dict[str, Any]:
        async def nothing(client: ChatClient, group: str) -> None:
            return None

        await bounded(CONCURRENT_STARTS, [partial(self.visit, i, nothing) for i in self.indices])
        return {}

    def creators(self) -> list[int]:
        return [i for i in self.indices if self.plan.user(i) == self.members[self.group(i)][0]]

    def group(self, index: int) -> str:
        return self.plan.group_of(index)

    async def create(self) -> dict[str, Any]:
        async def create(client: ChatClient, group: str) -> None:
            await client.create_group(group)

        await bounded(CONCURRENT_STARTS, [partial(self.visit, i, create) for i in self.creators()])
        return {}

    async def join(self) -> dict[str, Any]:
        async def join(client: ChatClient, group: str) -> None:
            await until(lambda: has(client.store.groups(), group), f"{client.me} to see {group}")
            await client.join_group(group)

        creators = set(self.creators())
        others = [i for i in self.indices if i not in creators]
        await bounded(CONCURRENT_STARTS, [partial(self.visit, i, join) for i in others])
        return {}

    async def start(self) -> dict[str, Any]:
        """Every user online, to stay for the traffic."""

        async def start_one(index: int) -> None:
            self.clients[index] = await self.online(index)

        await bounded(CONCURRENT_STARTS, [partial(start_one, i) for i in self.indices])
        return {"clients": len(self.clients)}

    def each(self) -> list[ChatClient]:
        return list(self.clients.values())

    async def ready(self) -> dict[str, Any]:
        """Until every client knows every user and all of its group, and has sent
        everything it queued."""

        async def caught_up(client: ChatClient, group: str) -> None:
            await until(
                lambda: count_at_least(client.store.users(), self.plan.users),
                f"{client.me} to know every user",
            )
            await until(
                lambda: covers(client.store.members(group), set(self.members[group])),
                f"{client.me} to see all of {group}",
            )

        async def ready_one(index: int) -> None:
            for attempt in range(1, ATTEMPTS + 1):
                client = self.clients[index]
                try:
                    await caught_up(client, self.group(index))
                    break
                except StalledError as exc:
                    self.stalled(exc, attempt)
                    await client.stop()
                    self.clients[index] = await self.online(index)
            if not await self.clients[index].flush(SETUP_TIMEOUT):
                raise RuntimeError(f"{self.plan.user(index)}'s outbox did not drain")

        stalls = self.stalls
        await asyncio.gather(*(ready_one(i) for i in self.indices))
        return {"rss": rss_bytes(), "stalls": self.stalls - stalls}

    async def traffic(self, rate: float, seconds: float) -> dict[str, Any]:
        """This worker's share of the aggregate rate, for `seconds`: each message from
        a user picked at random, to its group or its DM partner."""
        interval = 1.0 / rate
        sends: list[asyncio.Task[None]] = []
        expected = 0
        errors: list[str] = []
        send_times: list[float] = []
        started = time.monotonic()
        next_at, lag = started, 0.0

        async def send_one(index: int, conversation: Conversation) -> None:
            self.sent += 1
            at = time.monotonic()
            try:
                await self.clients[index].send(
                    conversation, content_at(at, self.plan.user(index), self.sent)
                )
            except ChatError as exc:
                errors.append(f"{self.plan.user(index)}: {exc}")
            send_times.append(time.monotonic() - at)

        while next_at < started + seconds:
            now = time.monotonic()
            if next_at > now:
                await asyncio.sleep(next_at - now)
            else:
                lag = max(lag, now - next_at)
            index = self.chance.choice(self.indices)
            conversation = self.plan.pick(index, self.chance)
            if conversation.kind == "group":
                expected += len(self.members[conversation.name]) - 1
            else:
                expected += 1
            sends.append(asyncio.create_task(send_one(index, conversation)))
            next_at += interval
        ended = time.monotonic()
        await asyncio.gather(*sends)
        send_times.sort()
        return {
            "sent": len(sends),
            "expected": expected,
            "errors": errors,
            "started": started,
            "ended": ended,
            "schedule_lag": lag,
            "send_p50": send_times[len(send_times) // 2] if send_times else 0.0,
        }

    async def arrived(self, since: float) -> dict[str, Any]:
        return {"count": sum(1 for sent_at, _ in self.arrivals.times if sent_at >= since)}

    async def latencies(self, since: float) -> dict[str, Any]:
        return {
            "latencies": [
                arrived - sent_at for sent_at, arrived in self.arrivals.times if sent_at >= since
            ],
            "last_arrival": max((a for s, a in self.arrivals.times if s >= since), default=0.0),
        }

    async def stop(self) -> dict[str, Any]:
        rss = rss_bytes()
        await bounded(
            CONCURRENT_STARTS,
            [c.stop for c in self.each()],
        )
        for user, shown in self.arrivals.shown.items():
            lines = "".join(json.dumps(item) + "\n" for item in shown)
            shown_file(self.config.data_dir, user).write_text(lines)
        return {
            "rss": rss,
            "problems": self.arrivals.problems[:20],
            "errors_logged": dict(TALLY.counts),
            "stalls": self.stalls,
        }

    def commands(self) -> dict[str, Callable[..., Awaitable[dict[str, Any]]]]:
        """What the parent may ask, by name (bench/load/run.py sends them in order)."""
        return {
            "register": self.register,
            "create": self.create,
            "join": self.join,
            "start": self.start,
            "ready": self.ready,
            "traffic": self.traffic,
            "arrived": self.arrived,
            "latencies": self.latencies,
            "stop": self.stop,
        }


async def count_at_least(values: Awaitable[list[str]], count: int) -> bool:
    return len(await values) >= count


async def has(values: Awaitable[list[str]], wanted: str) -> bool:
    return wanted in await values


async def covers(values: Awaitable[list[str]], wanted: set[str]) -> bool:
    return wanted <= set(await values)


async def serve(config: WorkerConfig, pipe: Connection) -> None:
    worker = Worker(config)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(TALLY.loop_error)
    while True:
        command, *args = await loop.run_in_executor(None, pipe.recv)
        began = time.monotonic()
        try:
            answer = await worker.commands()[command](*args)
        except Exception as exc:
            pipe.send({"error": f"worker {config.worker}, {command}: {exc!r}"})
            continue
        answer["seconds"] = time.monotonic() - began
        pipe.send(answer)
        if command == "stop":
            return


class Tally(logging.Handler):
    """Errors logged by a thousand clients, counted by their text instead of printed:
    the report lists each kind once, with its count."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        # By the message's template: its arguments (a body, an address) vary each time.
        error = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        self.counts[f"{record.name}: {record.msg} {error}".rstrip()] += 1

    def loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        kind = f" ({type(error).__name__})" if error is not None else ""
        self.counts[f"asyncio: {context.get('message')}{kind}"] += 1


TALLY = Tally()


def main(config: WorkerConfig, pipe: Connection) -> None:
    """The worker process: every client keeps a socket and a few SQLite files open."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logging.basicConfig(level=logging.ERROR, handlers=[TALLY])
    asyncio.run(serve(config, pipe))
