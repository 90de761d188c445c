"""The world of the archive service's tests: a namespace of its own on the shared broker,
an archive database on either backend, archive workers (in this process or as `python
-m chat_tui archive` subprocesses), and a foreign requester that speaks the protocol
with plain aio-pika, as any other client would.

What clients would publish is published raw here too (directory events, chat messages,
bad bodies): in open mode the broker takes any `user_id` the shared login gives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from chat_tui.archive.database import ArchiveDatabase, ConversationRef, open_archive_database
from chat_tui.archive.service import serve
from chat_tui.config import Settings
from chat_tui.protocol.archive import ArchiveAnswer, ArchiveRequest, decode_answer
from chat_tui.protocol.models import DirectoryEvent, SendMessage
from chat_tui.protocol.names import ARCHIVE_REQUEST_KEY, Names, group_key, user_key
from chat_tui.protocol.queues import QueueType
from chat_tui.transport.topology import declare_directory, declare_shared
from tests.archive.pg_server import fresh_database
from tests.conftest import ROOT, eventually

REPLY_TO = "amq.rabbitmq.reply-to"
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
async def archive_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Where the archive keeps its messages: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "archive.sqlite3")
        return
    async with fresh_database() as url:
        yield url


@contextlib.asynccontextmanager
async def archive_world(
    amqp_url: str,
    tmp_path: Path,
    archive_db: str,
    queue_type: QueueType = "classic",
    namespace: str | None = None,
) -> AsyncIterator[ArchiveWorld]:
    """A world of its own; or, given `namespace`, an archive in that deployment's."""
    world = ArchiveWorld(amqp_url, tmp_path, archive_db, queue_type, namespace)
    await world.open()
    try:
        yield world
    finally:
        await world.close()


@pytest.fixture
async def world(amqp_url: str, tmp_path: Path, archive_db: str) -> AsyncIterator[ArchiveWorld]:
    async with archive_world(amqp_url, tmp_path, archive_db) as opened:
        yield opened


def chat(
    sender: str,
    *,
    group: str | None = None,
    to: str | None = None,
    content: str = "hello",
    at: datetime | None = None,
) -> SendMessage:
    return SendMessage(
        message_id=uuid.uuid4(),
        sender_id=sender,
        group_id=group,
        recipient_id=to,
        content=content,
        timestamp=at or datetime.now(UTC),
    )


def routing_key_of(message: SendMessage) -> str:
    if message.group_id is not None:
        return group_key(message.group_id)
    assert message.recipient_id is not None
    return user_key(message.recipient_id)


def spaced(count: int, sender: str, group: str, text: str = "message") -> list[SendMessage]:
    """`count` group messages one second apart, oldest first, numbered in their text."""
    start = datetime.now(UTC) - timedelta(seconds=count)
    return [
        chat(sender, group=group, content=f"{text} {i}", at=start + timedelta(seconds=i))
        for i in range(count)
    ]


class RunningWorker:
    """An archive worker in this process (`chat_tui.archive.service.serve`)."""

    def __init__(self, settings: Settings) -> None:
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(serve(settings, self.stop_event))

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, 30)


class ArchiveWorld:
    def __init__(
        self,
        amqp_url: str,
        tmp_path: Path,
        archive_db: str,
        queue_type: QueueType = "classic",
        namespace: str | None = None,
    ) -> None:
        self.amqp_url = amqp_url
        self.queue_type: QueueType = queue_type
        self.tmp_path = tmp_path
        self.archive_db = archive_db
        self.names = Names(namespace or f"t{uuid.uuid4().hex[:10]}")
        self.workers: list[RunningWorker] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._database: ArchiveDatabase | None = None

    # --- setting up ------------------------------------------------------------------

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "user": "archivist",
            "amqp_url": self.amqp_url,
            "namespace": self.names.namespace,
            "data_dir": self.tmp_path,
            "archive_db": self.archive_db,
            "queue_type": self.queue_type,
            "heartbeat": 5,
            "confirm_timeout": 5.0,
            "reconnect_interval": 0.5,
        }
        values.update(overrides)
        return Settings(**values)

    async def open(self) -> None:
        # Robust, like a client's: a test may restart the broker under it.
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        # What the users' clients declare in open mode: the exchanges and the directory
        # stream, so that directory events published before a worker runs are kept.
        self._exchange = await declare_shared(self._channel, self.names, self.queue_type)
        await declare_directory(self._channel, self.names, self._exchange)

    async def database(self) -> ArchiveDatabase:
        """A handle of the test's own on the workers' database, to look at it."""
        if self._database is None:
            self._database = open_archive_database(self.archive_db)
            await self._database.open()
        return self._database

    async def forget_database(self) -> None:
        """Close the test's own handle (before its server goes away)."""
        database, self._database = self._database, None
        if database is not None:
            with contextlib.suppress(Exception):
                await database.close()

    async def stored(self) -> int:
        return await (await self.database()).count()

    async def start_worker(self, **overrides: Any) -> RunningWorker:
        """A worker in this process, once it consumes (its queues exist)."""
        worker = RunningWorker(self.settings(**overrides))
        self.workers.append(worker)
        running = sum(not each.task.done() for each in self.workers)
        await eventually(
            lambda: self.consumers(self.names.archive_requests_queue, at_least=running),
            what="the worker to consume",
            timeout=20,
        )
        return worker

    def spawn_worker(self, *extra: str) -> subprocess.Popen[bytes]:
        """`python -m chat_tui archive` as a process of its own; what it prints goes to
        `worker-N.log` (`log_of`), never to a pipe nobody reads."""
        env = {
            **os.environ,
            "CHAT_TUI_AMQP_URL": self.amqp_url,
            "CHAT_TUI_NAMESPACE": self.names.namespace,
            "CHAT_TUI_DATA_DIR": str(self.tmp_path),
            "CHAT_TUI_ARCHIVE_DB": self.archive_db,
            "CHAT_TUI_RECONNECT_INTERVAL": "0.5",
            "CHAT_TUI_CONFIG_FILE": str(self.tmp_path / "no-config.toml"),
        }
        with self.log_of(len(self.processes)).open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "chat_tui", "archive", *extra],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.processes.append(process)
        return process

    async def worker_process_in_a_backlog(
        self, count: int
    ) -> tuple[list[SendMessage], subprocess.Popen[bytes]]:
        """`count` messages queued while no worker ran (a first one declared NS.archive
        and stepped aside), then a worker process that has stored its first batch."""
        first = await self.start_worker()
        await first.stop()
        messages = spaced(count, "alice", "lobby")
        await self.send(messages)
        process = self.spawn_worker()

        async def under_way() -> bool:
            return await self.stored() > 0

        await eventually(under_way, what="the worker to store its first batch", timeout=30)
        return messages, process

    def log_of(self, index: int) -> Path:
        """What the `index`-th spawned worker printed."""
        return self.tmp_path / f"worker-{index}.log"

    async def consumers(self, queue: str, *, at_least: int) -> bool:
        assert self._connection is not None
        channel = await self._connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()
        result = declared.declaration_result
        return result is not None and (result.consumer_count or 0) >= at_least

    async def depth(self, queue: str) -> int:
        """Messages ready in `queue`."""
        assert self._connection is not None
        channel = await self._connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
            assert declared.declaration_result is not None
            return declared.declaration_result.message_count or 0
        finally:
            await channel.close()

    async def drained(self) -> bool:
        """NS.archive holds nothing ready (what is delivered may still be unacked)."""
        return await self.depth(self.names.archive_queue) == 0

    async def contents(self, group: str) -> list[str]:
        """Every archived message of `group`, in conversation order, read straight from
        the database: a message stored twice would show twice."""
        database = await self.database()
        texts: list[str] = []
        cursor = None
        while True:
            page, cursor = await database.history(
                ConversationRef.group(group), cursor, "newer", 200
            )
            texts += [m.content for m in page]
            if cursor is None:
                return texts

    async def holds(self, count: int) -> bool:
        """The database holds exactly `count` messages."""
        return await self.stored() == count

    # --- publishing as clients do ----------------------------------------------------

    async def publish(self, body: bytes, routing_key: str, **properties: Any) -> None:
        assert self._exchange is not None
        message = aio_pika.Message(
            body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties
        )
        await self._exchange.publish(message, routing_key)

    async def send(self, messages: Sequence[SendMessage], **properties: Any) -> None:
        """Publish chat messages under their own routing keys, confirmed, concurrently."""
        await asyncio.gather(
            *(self.publish(m.to_body(), routing_key_of(m), **properties) for m in messages)
        )

    async def send_in_chunks(
        self, messages: Sequence[SendMessage], *, chunk: int, pause: float
    ) -> None:
        """A steady load: `chunk` messages at a time, `pause` seconds apart."""
        for start in range(0, len(messages), chunk):
            await self.send(messages[start : start + chunk])
            await asyncio.sleep(pause)

    async def register(self, *users: str) -> None:
        for user in users:
            event = DirectoryEvent(event="registered", user_id=user)
            await self.publish(event.to_body(), event.routing_key)

    async def join(self, group: str, *users: str) -> None:
        for user in users:
            event = DirectoryEvent(event="joined", user_id=user, group_id=group)
            await self.publish(event.to_body(), event.routing_key)

    async def leave(self, group: str, user: str) -> None:
        event = DirectoryEvent(event="left", user_id=user, group_id=group)
        await self.publish(event.to_body(), event.routing_key)

    # --- asking as a foreign client does ---------------------------------------------

    async def ask(self, request: ArchiveRequest | bytes, timeout: float = 10.0) -> ArchiveAnswer:
        """Publish a request with direct reply-to and a correlation_id; the answer."""
        body = request if isinstance(request, bytes) else request.to_body()
        assert self._connection is not None
        channel = await self._connection.channel()
        try:
            replies = await channel.get_queue(REPLY_TO, ensure=False)
            answered: asyncio.Future[aio_pika.abc.AbstractIncomingMessage] = (
                asyncio.get_running_loop().create_future()
            )
            correlation_id = uuid.uuid4().hex

            async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                if message.correlation_id == correlation_id and not answered.done():
                    answered.set_result(message)

            await replies.consume(on_reply, no_ack=True)
            exchange = await channel.get_exchange(self.names.messages_exchange, ensure=False)
            await exchange.publish(
                aio_pika.Message(body, reply_to=REPLY_TO, correlation_id=correlation_id),
                ARCHIVE_REQUEST_KEY,
            )
            reply = await asyncio.wait_for(answered, timeout)
            return decode_answer(reply.body)
        finally:
            await channel.close()

    async def dead_letters(self) -> list[bytes]:
        """The bodies in NS.dead-letters, taken off the queue."""
        assert self._connection is not None
        channel = await self._connection.channel()
        bodies: list[bytes] = []
        try:
            queue = await channel.declare_queue(self.names.dead_letters_queue, passive=True)
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                bodies.append(message.body)
        finally:
            await channel.close()
        return bodies

    # --- cleaning up -----------------------------------------------------------------

    async def stop_workers(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                await worker.stop()
        self.workers.clear()
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()

    async def close(self) -> None:
        await self.stop_workers()
        if self._database is not None:
            await self._database.close()
        if self._connection is None:
            return
        names = self.names
        for queue in (
            names.archive_queue,
            names.archive_requests_queue,
            names.directory_stream,
            names.dead_letters_queue,
        ):
            channel = await self._connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
            if not channel.is_closed:
                await channel.close()
        channel = await self._connection.channel()
        for exchange in (names.messages_exchange, names.dead_exchange):
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)
        await self._connection.close()


def body_of(message: SendMessage, **changes: Any) -> bytes:
    """`message`'s body with `changes` applied, as a buggy or hostile client would send."""
    fields = json.loads(message.to_body())
    fields.update(changes)
    return json.dumps(fields).encode("utf-8")
