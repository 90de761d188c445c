"""Shared fixtures and the suite's markers.

A test that needs RabbitMQ asks for the `amqp_url` fixture (directly or through
`deployment` or `raw`) and works under a fresh namespace. The broker is the one at
CHAT_TUI_AMQP_URL (default: the local one). If it does not answer, the session starts it
the way `make broker` does, and fails if it cannot: no test is skipped for want of a
broker. Markers follow from that and from the folders (see pytest_collection_modifyitems),
so that `-m "not broker"` runs without any broker and cannot drift.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.core.records import StatusChange, StoredMessage
from chat_tui.core.sink import Sink
from chat_tui.core.status import ClientStatus
from chat_tui.protocol.names import Names

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
AMQP_URL = os.environ.get("CHAT_TUI_AMQP_URL", "amqp://guest:guest@localhost:5672/")


def _broker_answers() -> bool:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "broker_answers.py"), "3"],
        env={**os.environ, "CHAT_TUI_AMQP_URL": AMQP_URL},
        capture_output=True,
    )
    return result.returncode == 0


@pytest.fixture(scope="session")
def amqp_url() -> str:
    # `make test-fast` promises no broker start; a test that reached this fixture around
    # the marking below (getfixturevalue) fails there instead.
    if os.environ.get("CHAT_TUI_TESTS_WITHOUT_BROKER"):
        pytest.fail("this test needs a broker, but it is not marked broker")
    if not _broker_answers():
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "broker.sh")],
            cwd=ROOT,
            env={**os.environ, "PY": sys.executable},
            check=False,
        )
    if not _broker_answers():
        pytest.fail(f"no RabbitMQ answers at {AMQP_URL} and none could be started")
    return AMQP_URL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark from what a test needs, not by hand: `broker` for every test whose fixtures
    reach `amqp_url` and for the fault suite (it runs its own RabbitMQ node), `faults` for
    tests/faults, `tui` for tests/tui."""
    for item in items:
        path = item.path
        in_faults = path.is_relative_to(TESTS / "faults")
        if in_faults:
            item.add_marker(pytest.mark.faults)
        if path.is_relative_to(TESTS / "tui"):
            item.add_marker(pytest.mark.tui)
        if in_faults or "amqp_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


class RecordingSink(Sink):
    """A sink that remembers everything the core told it."""

    def __init__(self) -> None:
        self.shown: list[StoredMessage] = []
        self.changes: list[StatusChange] = []
        self.statuses: list[ClientStatus] = []
        self.problems: list[str] = []
        self.directory_changes = 0

    async def show(self, messages: Sequence[StoredMessage]) -> None:
        self.shown.extend(messages)

    def status_changed(self, changes: Sequence[StatusChange]) -> None:
        self.changes.extend(changes)

    def connection_changed(self, status: ClientStatus) -> None:
        self.statuses.append(status)

    def directory_changed(self) -> None:
        self.directory_changes += 1

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def contents(self) -> list[str]:
        return [m.content for m in self.shown]


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll `check` until it is true; fail with `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


class Deployment:
    """One namespace on the broker, its users' cache folder, and cleanup of both."""

    def __init__(self, amqp_url: str, data_dir: Path) -> None:
        self.amqp_url = amqp_url
        self.namespace = f"t{uuid.uuid4().hex[:10]}"
        self.names = Names(self.namespace)
        self.data_dir = data_dir
        self.users: set[str] = set()
        self.clients: list[ChatClient] = []

    def settings(self, user: str, **overrides: Any) -> Settings:
        self.users.add(user)
        values: dict[str, Any] = {
            "user": user,
            "amqp_url": self.amqp_url,
            "namespace": self.namespace,
            "data_dir": self.data_dir,
            "heartbeat": 5,
            "confirm_timeout": 5.0,
            "reconnect_interval": 0.5,
        }
        values.update(overrides)
        return Settings(**values)

    async def client(
        self, user: str, sink: Any = None, *, online: bool = True, **overrides: Any
    ) -> ChatClient:
        client = ChatClient(self.settings(user, **overrides), sink or RecordingSink())
        await client.start()
        self.clients.append(client)
        if online:
            assert await client.wait_online(10), f"{user} did not come online"
            assert client.directory is not None
            await client.directory.wait_caught_up(5)
        return client

    def cli_env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ}
        env.update(
            CHAT_TUI_AMQP_URL=self.amqp_url,
            CHAT_TUI_NAMESPACE=self.namespace,
            CHAT_TUI_DATA_DIR=str(self.data_dir),
            CHAT_TUI_CONFIG_FILE=str(self.data_dir / "no-config.toml"),
        )
        env.update(extra)
        return env

    def cli(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """Run `chat-tui ARGS` as a real subprocess."""
        for i, arg in enumerate(args):
            if arg == "--user" and i + 1 < len(args):
                self.users.add(args[i + 1])
        return subprocess.run(
            [sys.executable, "-m", "chat_tui", *args],
            env=self.cli_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    async def cleanup(self) -> None:
        for client in self.clients:
            await client.stop()
        connection = await aio_pika.connect(self.amqp_url)
        try:
            queues = [self.names.dead_letters_queue, self.names.directory_stream]
            # An archive (the demo's, or a test's) declares its own two in open mode.
            queues += [self.names.archive_queue, self.names.archive_requests_queue]
            for user in self.users:
                queues += [self.names.inbox_queue(user), self.names.receipts_queue(user)]
            for name in queues:
                channel = await connection.channel()
                try:
                    await channel.queue_delete(name)
                except Exception:
                    pass
                finally:
                    if not channel.is_closed:
                        await channel.close()
            channel = await connection.channel()
            for exchange in (self.names.messages_exchange, self.names.dead_exchange):
                await channel.exchange_delete(exchange)
        finally:
            await connection.close()


@pytest.fixture
async def deployment(amqp_url: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    deployment = Deployment(amqp_url, tmp_path)
    yield deployment
    await deployment.cleanup()


@pytest.fixture
async def raw(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    """A plain aio-pika connection, to look at or act on the broker behind the clients."""
    connection = await aio_pika.connect_robust(amqp_url)
    yield connection
    await connection.close()


def closed_port_url() -> str:
    """An AMQP URL on a local port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}/"


async def knows(client: ChatClient, *users: str) -> bool:
    """The client's directory knows all of `users`."""
    return set(users) <= set(await client.store.users())


async def has_group(client: ChatClient, group: str) -> bool:
    return group in await client.store.groups()


async def members_are(client: ChatClient, group: str, *users: str) -> bool:
    return set(await client.store.members(group)) == set(users)


async def is_member(client: ChatClient, group: str, user: str) -> bool:
    return user in await client.store.members(group)
