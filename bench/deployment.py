"""One benchmark run's corner of the shared broker: a fresh namespace, a data folder,
chat-tui clients and plain aio-pika queues in it, and the cleanup of all of them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection
from pamqp.common import FieldTable

from bench.baseline import AckingConsumer
from chat_tui.config import CONFIG_FILE_ENV, Settings
from chat_tui.core.client import ChatClient
from chat_tui.core.sink import Sink
from chat_tui.protocol.names import Names, group_key
from chat_tui.protocol.queues import personal_queue_arguments
from chat_tui.transport.connection import Transport

AMQP_URL = os.environ.get("CHAT_TUI_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PREFETCH = Transport("amqp://unused/", Names("unused"), "unused").prefetch
"""The prefetch of chat-tui's inbox consumer (400); the baselines use the same."""


class BenchDeployment:
    """Everything a run declares on the broker and writes to disk, so it can all go."""

    def __init__(self, amqp_url: str = AMQP_URL) -> None:
        self.amqp_url = amqp_url
        self.namespace = f"bench{uuid.uuid4().hex[:8]}"
        self.names = Names(self.namespace)
        # /tmp is on the real disk here (not tmpfs): fsync costs are part of the numbers.
        self.data_dir = Path(tempfile.mkdtemp(prefix="chat-tui-bench-"))
        # Keep a developer's own config.toml out of the measurements.
        os.environ[CONFIG_FILE_ENV] = str(self.data_dir / "no-config.toml")
        self.users: set[str] = set()
        self.baseline_queues: set[str] = set()
        self.clients: list[ChatClient] = []

    def settings(self, user: str, **overrides: Any) -> Settings:
        self.users.add(user)
        values: dict[str, Any] = {
            "user": user,
            "amqp_url": self.amqp_url,
            "namespace": self.namespace,
            "data_dir": self.data_dir,
        }
        values.update(overrides)
        return Settings(**values)

    async def client(
        self, user: str, sink: Sink | None = None, *, online: bool = True
    ) -> ChatClient:
        """A started client; with `online`, connected and caught up with the directory."""
        client = ChatClient(self.settings(user), sink or Sink())
        await client.start()
        self.clients.append(client)
        if online:
            if not await client.wait_online(30):
                raise RuntimeError(f"{user} did not come online: {client.status.error}")
            if not await client.wait_directory(30):
                raise RuntimeError(f"{user} did not catch up with the directory")
        return client

    async def stop_client(self, client: ChatClient) -> None:
        await client.stop()
        if client in self.clients:
            self.clients.remove(client)

    async def register(self, *users: str) -> None:
        """Make users exist (inbox, receipts queue, directory entry), then go offline."""
        for user in users:
            client = await self.client(user)
            await client.flush(30)
            await self.stop_client(client)

    async def connect(self) -> AbstractRobustConnection:
        return await aio_pika.connect_robust(self.amqp_url)

    async def baseline_queue(
        self, channel: AbstractChannel, name: str, group_ids: Sequence[str]
    ) -> AbstractQueue:
        """A plain queue as durable as an inbox (same arguments), bound to group keys of
        NS.messages, so the same publishes reach it."""
        full_name = f"{self.namespace}.baseline.{name}"
        self.baseline_queues.add(full_name)
        exchange = await channel.declare_exchange(
            self.names.messages_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        arguments: FieldTable = dict(personal_queue_arguments(self.names))
        queue = await channel.declare_queue(full_name, durable=True, arguments=arguments)
        for group_id in group_ids:
            await queue.bind(exchange, routing_key=group_key(group_id))
        return queue

    async def plain_consumer(
        self,
        connection: AbstractRobustConnection,
        name: str,
        group_ids: Sequence[str],
        expected: int,
    ) -> AckingConsumer:
        """A baseline consumer, acking each message, on a channel of its own with
        chat-tui's prefetch, consuming a `baseline_queue` bound to `group_ids`."""
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await self.baseline_queue(channel, name, group_ids)
        consumer = AckingConsumer(expected)
        await queue.consume(consumer.on_message, no_ack=False)
        return consumer

    async def queue_depth(self, name: str) -> int:
        """Messages ready in a queue (not counting unacked ones)."""
        connection = await aio_pika.connect(self.amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            result = queue.declaration_result
            return int(result.message_count or 0) if result else 0
        finally:
            await connection.close()

    async def cleanup(self) -> None:
        """Stop the clients and delete every queue and exchange of this namespace."""
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                await client.stop()
        self.clients.clear()
        connection = await aio_pika.connect(self.amqp_url)
        try:
            queues = [self.names.dead_letters_queue, self.names.directory_stream]
            for user in sorted(self.users):
                queues += [self.names.inbox_queue(user), self.names.receipts_queue(user)]
            queues += sorted(self.baseline_queues)
            for name in queues:
                # A failed delete closes its channel, so each gets its own.
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
                if not channel.is_closed:
                    await channel.close()
            channel = await connection.channel()
            for exchange in (self.names.messages_exchange, self.names.dead_exchange):
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(exchange)
        finally:
            await connection.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    """Poll `check` until it holds; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def group_with(creator: ChatClient, members: Sequence[ChatClient], group_id: str) -> None:
    """`creator` creates a group, `members` join it, and everyone sees everyone in it."""
    await creator.create_group(group_id)

    async def join(member: ChatClient) -> None:
        await until(lambda: _has(member.store.groups(), group_id), f"{member.me} to see {group_id}")
        await member.join_group(group_id)

    await asyncio.gather(*(join(m) for m in members))
    everyone = {creator.me, *(m.me for m in members)}
    for client in (creator, *members):
        await until(
            lambda client=client: _covers(client.store.members(group_id), everyone),  # type: ignore[misc]
            f"{client.me} to see every member of {group_id}",
        )


async def _has(values: Awaitable[list[str]], wanted: str) -> bool:
    return wanted in await values


async def _covers(values: Awaitable[list[str]], wanted: set[str]) -> bool:
    return wanted <= set(await values)
