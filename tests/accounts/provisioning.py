"""Provisioning on the managed node as an administrator does it: `Admin` runs the real
`chat-tui admin` on one vhost and a fresh namespace, and `AccountsDeployment` starts the
provisioned users' clients in accounts mode, logs an account in with plain aio-pika (as
an attacker would), and reads through the management API what no chat user may see:
the dead letters, a queue's bindings and arguments."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
from aio_pika.abc import AbstractConnection

from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.protocol.names import Names
from tests.accounts.node import ManagedNode
from tests.conftest import RecordingSink


def shown(client: ChatClient) -> list[str]:
    """What the client's face was given to show."""
    sink = client.sink
    assert isinstance(sink, RecordingSink)
    return sink.contents()


async def status_of(client: ChatClient, message_id: str) -> tuple[str, int, int]:
    """An own message's status, and how many recipients have it and have read it."""
    message = await client.store.get_message(message_id)
    assert message is not None
    return message.status, message.delivered_count, message.read_count


class Admin:
    """`chat-tui admin` on one vhost and a fresh namespace of the managed node."""

    def __init__(self, node: ManagedNode, vhost: str, data_dir: Path) -> None:
        self.node = node
        self.vhost = vhost
        self.names = Names(f"t{uuid.uuid4().hex[:10]}")
        self.data_dir = data_dir
        self.accounts: set[str] = set()

    def user_id(self, stem: str) -> str:
        """A user ID no other test uses (accounts are per node, not per vhost)."""
        name = f"{stem}-{uuid.uuid4().hex[:6]}"
        self.accounts.add(name)
        return name

    def run(
        self, *args: str, stdin: str | None = None, admin_url: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "CHAT_TUI_ADMIN_URL": admin_url or self.node.admin_url,
            "CHAT_TUI_AMQP_URL": self.node.amqp_url("nobody", "unused", self.vhost),
            "CHAT_TUI_NAMESPACE": self.names.namespace,
            "CHAT_TUI_DATA_DIR": str(self.data_dir),
            "CHAT_TUI_CONFIG_FILE": str(self.data_dir / "no-config.toml"),
        }
        return subprocess.run(
            [sys.executable, "-m", "chat_tui", "admin", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str, stdin: str | None = None) -> list[str]:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
        assert result.stderr == ""
        return result.stdout.splitlines()

    def add_user(self, stem: str) -> tuple[str, str]:
        """A provisioned user: its ID and the password add-user printed once."""
        name = self.user_id(stem)
        return name, self.provision(name)

    def provision(self, name: str) -> str:
        """`add-user` for an ID taken from `user_id()`; the password it printed once."""
        lines = self.ok("add-user", name)
        (shown,) = [line for line in lines if line.startswith(f"password of {name} (shown once): ")]
        return shown.rsplit(" ", 1)[1]

    def api_get(self, path: str) -> Any:
        """A decoded JSON body of the management API, as the administrator sees it."""
        with self.node.http() as api:
            response = api.get(path)
            response.raise_for_status()
            return response.json()

    def api_put(self, path: str, body: dict[str, str]) -> None:
        with self.node.http() as api:
            api.put(path, json=body).raise_for_status()

    @property
    def v(self) -> str:
        return quote(self.vhost, safe="")


@dataclass(frozen=True)
class Account:
    """A chat user provisioned by `chat-tui admin add-user`: its ID is its login."""

    user: str
    password: str


@dataclass(frozen=True)
class DeadLetter:
    """A message in `NS.dead-letters`, as the management API shows it."""

    routing_key: str
    user_id: str | None
    body: dict[str, Any]


class AccountsDeployment:
    """One vhost of the managed node after `chat-tui admin init`: its accounts, their
    clients in accounts mode, and raw aio-pika logins, stopped together by `stop_all`."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.node = admin.node
        self.names = admin.names
        self.clients: list[ChatClient] = []
        self.logins: list[AbstractConnection] = []

    def add_user(self, stem: str) -> Account:
        """`chat-tui admin add-user` for a fresh user ID starting with `stem`."""
        return Account(*self.admin.add_user(stem))

    def settings(self, account: Account, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "user": account.user,
            "amqp_url": self.node.amqp_url(account.user, account.password, self.admin.vhost),
            "namespace": self.names.namespace,
            "data_dir": self.admin.data_dir,
            "heartbeat": 5,
            "confirm_timeout": 5.0,
            "reconnect_interval": 0.5,
        }
        values.update(overrides)
        settings = Settings(**values)
        assert settings.accounts_mode
        return settings

    async def client(self, account: Account, *, online: bool = True) -> ChatClient:
        """`account`'s client with a `RecordingSink`; by default online, its directory
        read to the end."""
        client = ChatClient(self.settings(account), RecordingSink())
        await client.start()
        self.clients.append(client)
        if online:
            assert await client.wait_online(20), f"{account.user}: {client.status}"
            assert await client.directory.wait_caught_up(10), f"{account.user}'s directory"
        return client

    async def stop(self, client: ChatClient) -> None:
        await client.stop()
        self.clients.remove(client)

    async def login(self, account: Account) -> AbstractConnection:
        """A plain aio-pika connection with `account`'s own login: no chat-tui code."""
        url = self.node.amqp_url(account.user, account.password, self.admin.vhost)
        connection = await aio_pika.connect(url)
        self.logins.append(connection)
        return connection

    async def stop_all(self) -> None:
        for client in list(self.clients):
            await self.stop(client)
        for connection in self.logins:
            with contextlib.suppress(Exception):
                await connection.close()
        self.logins.clear()

    async def dead_letters(self) -> list[DeadLetter]:
        """Every message in `NS.dead-letters`, left there (fetched and requeued)."""
        path = f"api/queues/{self.admin.v}/{quote(self.names.dead_letters_queue, safe='')}/get"
        request = {"count": 10_000, "ackmode": "ack_requeue_true", "encoding": "auto"}

        def fetch() -> list[Any]:
            with self.node.http() as api:
                response = api.post(path, json=request)
                response.raise_for_status()
                found = response.json()
                assert isinstance(found, list)
                return found

        return [
            DeadLetter(m["routing_key"], m["properties"].get("user_id"), json.loads(m["payload"]))
            for m in await asyncio.to_thread(fetch)
        ]

    async def queue(self, name: str) -> dict[str, Any]:
        """A queue as the management API describes it (arguments, type, durability)."""
        found = await asyncio.to_thread(
            self.admin.api_get, f"api/queues/{self.admin.v}/{quote(name, safe='')}"
        )
        assert isinstance(found, dict)
        return found

    async def binding_keys(self, queue: str) -> set[str]:
        """The routing keys that bind `queue` to `NS.messages`."""
        exchange = quote(self.names.messages_exchange, safe="")
        found = await asyncio.to_thread(
            self.admin.api_get,
            f"api/bindings/{self.admin.v}/e/{exchange}/q/{quote(queue, safe='')}",
        )
        assert isinstance(found, list)
        return {binding["routing_key"] for binding in found}
