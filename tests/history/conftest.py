"""Fixtures of the client's history and search tests: the real archive (`chat-tui
archive`, run in-process on the test's namespace) on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aio_pika
import pytest

from chat_tui.archive.service import serve
from chat_tui.core.records import StoredMessage
from chat_tui.protocol.conversations import Conversation
from tests.archive.pg_server import fresh_database
from tests.conftest import Deployment, RecordingSink, eventually


class HistorySink(RecordingSink):
    """Also remembers the history fills and the archive notices."""

    def __init__(self) -> None:
        super().__init__()
        self.filled: list[tuple[Conversation, int]] = []
        self.archive_notices: list[str] = []

    def history_filled(self, conversation: Conversation, count: int) -> None:
        self.filled.append((conversation, count))

    def archive_unavailable(self, text: str) -> None:
        self.archive_notices.append(text)


class RunningArchive:
    """One archive worker of the deployment, in this process."""

    def __init__(self, deployment: Deployment, location: str) -> None:
        self.deployment = deployment
        self.location = location
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.deployment.settings("archivist", archive_db=self.location)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(serve(settings, self._stop))
        await eventually(self._consuming, timeout=20, what="the archive to consume its requests")

    async def _consuming(self) -> bool:
        if self._task is not None and self._task.done():
            self._task.result()  # it failed: say why
        connection = await aio_pika.connect(self.deployment.amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                self.deployment.names.archive_requests_queue, passive=True
            )
            result = queue.declaration_result
            return bool(result and result.consumer_count)
        except aio_pika.exceptions.ChannelClosed:
            return False
        finally:
            await connection.close()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None


async def delete_archive_queues(deployment: Deployment) -> None:
    connection = await aio_pika.connect(deployment.amqp_url)
    try:
        for name in (deployment.names.archive_queue, deployment.names.archive_requests_queue):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(name)
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_archive(
    request: pytest.FixtureRequest, deployment: Deployment, tmp_path: Path
) -> AsyncIterator[RunningArchive]:
    """The archive on each of its backends."""
    if request.param == "sqlite":
        async with _running(deployment, str(tmp_path / "archive" / "archive.sqlite3")) as it:
            yield it
    else:
        async with fresh_database() as url, _running(deployment, url) as it:
            yield it


@pytest.fixture
async def archive(deployment: Deployment, tmp_path: Path) -> AsyncIterator[RunningArchive]:
    """The archive on SQLite, the embedded default."""
    async with _running(deployment, str(tmp_path / "archive" / "archive.sqlite3")) as it:
        yield it


@contextlib.asynccontextmanager
async def _running(deployment: Deployment, location: str) -> AsyncIterator[RunningArchive]:
    running = RunningArchive(deployment, location)
    await running.start()
    try:
        yield running
    finally:
        # The clients first: they would keep asking a stopped archive.
        for client in deployment.clients:
            await client.stop()
        deployment.clients.clear()
        await running.stop()
        await delete_archive_queues(deployment)


def texts(messages: Sequence[StoredMessage]) -> list[str]:
    return [m.content for m in messages]
