"""The client in accounts mode, on the private managed node (issue 10): it declares
nothing and finds what `chat-tui admin` provisioned, and every refusal of the broker
ends the connecting with a text that says what was refused and what to do, instead of
retrying forever as "unreachable"."""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import pytest

from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import DirectoryEvent
from chat_tui.protocol.names import Names, directory_user_key
from chat_tui.protocol.outgoing import Outgoing
from chat_tui.protocol.permissions import chat_user_permissions
from chat_tui.protocol.queues import Topology, personal_topology, shared_topology
from chat_tui.transport.connection import Transport
from chat_tui.transport.errors import PublishFailed, PublishRefused
from tests.accounts.node import ADMIN_USER, ManagedNode
from tests.conftest import RecordingSink, eventually, knows
from tests.faults.broker_node import RABBITMQ_USER, BrokerNode, free_port

NAMES = Names("chat")


@dataclass
class Accounts:
    """One vhost of the managed node, provisioned as `chat-tui admin` does it."""

    node: ManagedNode
    vhost: str
    data_dir: Path
    users: list[str]
    clients: list[ChatClient]

    def fresh_id(self, prefix: str) -> str:
        # Accounts are per node, shared by every test's vhost.
        user = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.users.append(user)
        return user

    async def declare(self, topology: Topology) -> None:
        connection = await aio_pika.connect(
            self.node.amqp_url(ADMIN_USER, self.node.admin_password, self.vhost)
        )
        try:
            channel = await connection.channel()
            for exchange in topology.exchanges:
                await channel.declare_exchange(
                    exchange.name, aio_pika.ExchangeType(exchange.type), durable=True
                )
            for queue in topology.queues:
                await channel.declare_queue(
                    queue.name, durable=True, arguments=dict(queue.arguments)
                )
            for binding in topology.bindings:
                declared = await channel.get_queue(binding.queue)
                await declared.bind(binding.exchange, routing_key=binding.routing_key)
        finally:
            await connection.close()

    async def init(self) -> None:
        await self.declare(shared_topology(NAMES))

    def add_account(self, user: str, *, rights: bool = True) -> str:
        """The broker user with its permissions; returns its password."""
        password = secrets.token_urlsafe(12)
        vhost = quote(self.vhost, safe="")
        with self.node.http() as api:
            api.put(f"api/users/{user}", json={"password": password, "tags": ""}).raise_for_status()
            if rights:
                allowed = chat_user_permissions(NAMES, user)
                api.put(
                    f"api/permissions/{vhost}/{user}",
                    json={
                        "configure": allowed.vhost.configure,
                        "write": allowed.vhost.write,
                        "read": allowed.vhost.read,
                    },
                ).raise_for_status()
                api.put(
                    f"api/topic-permissions/{vhost}/{user}",
                    json={
                        "exchange": allowed.topic.exchange,
                        "write": allowed.topic.write,
                        "read": allowed.topic.read,
                    },
                ).raise_for_status()
        return password

    async def add_user(self, user: str) -> str:
        password = self.add_account(user)
        await self.declare(personal_topology(NAMES, user))
        return password

    def settings(self, user: str, login: str, password: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "user": user,
            "amqp_url": self.node.amqp_url(login, password, self.vhost),
            "namespace": NAMES.namespace,
            "data_dir": self.data_dir,
            "heartbeat": 5,
            "confirm_timeout": 5.0,
            "reconnect_interval": 0.5,
        }
        values.update(overrides)
        return Settings(**values)

    async def client(self, settings: Settings) -> ChatClient:
        client = ChatClient(settings, RecordingSink())
        await client.start()
        self.clients.append(client)
        return client


@pytest.fixture
async def accounts(
    managed_node: ManagedNode, vhost: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Accounts]:
    # Keep a developer's own config.toml out: accounts mode checks who can read it.
    monkeypatch.setenv("CHAT_TUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    provisioned = Accounts(managed_node, vhost, tmp_path, [], [])
    yield provisioned
    for client in provisioned.clients:
        await client.stop()
    for user in provisioned.users:
        managed_node.delete_user(user)


async def _refusal(accounts: Accounts, settings: Settings) -> str:
    client = await accounts.client(settings)
    online = await client.wait_first_attempt(20)
    assert not online
    assert client.fatal_error is not None, client.status
    assert client.status.refused == client.fatal_error
    assert settings.broker_password is not None
    assert settings.broker_password.get_secret_value() not in client.fatal_error
    return client.fatal_error


async def test_a_provisioned_user_comes_online_registers_and_chats(accounts: Accounts) -> None:
    await accounts.init()
    alice, bob = accounts.fresh_id("alice"), accounts.fresh_id("bob")
    alice_password = await accounts.add_user(alice)
    bob_password = await accounts.add_user(bob)
    alice_client = await accounts.client(accounts.settings(alice, alice, alice_password))
    bob_client = await accounts.client(accounts.settings(bob, bob, bob_password))
    assert alice_client.settings.accounts_mode
    assert await alice_client.wait_online(20), alice_client.status
    assert await bob_client.wait_online(20), bob_client.status
    # The queues existed before the first start: both register all the same.
    await eventually(lambda: knows(alice_client, alice, bob), what="both registered")

    sent = await alice_client.send(Conversation.dm(bob), "hello with accounts")
    change = await alice_client.wait_sent(sent.message_id, timeout=10)
    assert change.status != "failed", change
    bob_sink = bob_client.sink
    assert isinstance(bob_sink, RecordingSink)
    await eventually(lambda: "hello with accounts" in bob_sink.contents(), what="bob's DM")


async def test_a_wrong_password_is_refused_once_and_says_how_to_set_one(
    accounts: Accounts,
) -> None:
    await accounts.init()
    alice = accounts.fresh_id("alice")
    await accounts.add_user(alice)
    refusal = await _refusal(accounts, accounts.settings(alice, alice, "not-the-password"))
    assert f"refused the credentials of '{alice}'" in refusal
    assert f"chat-tui admin passwd {alice}" in refusal
    assert "not-the-password" not in refusal


async def test_an_account_without_rights_on_the_vhost_is_told_to_ask_for_them(
    accounts: Accounts,
) -> None:
    await accounts.init()
    alice = accounts.fresh_id("alice")
    password = accounts.add_account(alice, rights=False)
    refusal = await _refusal(accounts, accounts.settings(alice, alice, password))
    assert f"refused '{alice}' access to its virtual host {accounts.vhost!r}" in refusal
    assert f"chat-tui admin add-user {alice}" in refusal


async def test_a_broker_without_the_shared_objects_names_admin_init(accounts: Accounts) -> None:
    alice = accounts.fresh_id("alice")
    password = accounts.add_account(alice)
    refusal = await _refusal(accounts, accounts.settings(alice, alice, password))
    assert refusal.startswith(
        f"the broker has no {NAMES.messages_exchange}, {NAMES.dead_exchange}, "
        f"{NAMES.dead_letters_queue}, {NAMES.directory_stream}: "
    ), refusal
    assert "'chat-tui admin init'" in refusal


async def test_a_user_without_queues_is_told_to_be_added(accounts: Accounts) -> None:
    await accounts.init()
    alice = accounts.fresh_id("alice")
    password = accounts.add_account(alice)
    refusal = await _refusal(accounts, accounts.settings(alice, alice, password))
    assert refusal.startswith(
        f"the broker has no {NAMES.inbox_queue(alice)}, {NAMES.receipts_queue(alice)}: "
    ), refusal
    assert f"'chat-tui admin add-user {alice}'" in refusal


async def test_a_login_that_is_not_the_user_id_is_told_they_differ(accounts: Accounts) -> None:
    await accounts.init()
    alice = accounts.fresh_id("alice")
    password = await accounts.add_user(alice)
    # Logged in as alice but claiming to be carol: open mode, which declares things.
    settings = accounts.settings("carol", alice, password)
    assert not settings.accounts_mode
    refusal = await _refusal(accounts, settings)
    assert f"The login '{alice}' differs from the user ID 'carol'" in refusal
    assert "ACCESS_REFUSED" in refusal


async def test_a_publish_the_account_may_not_make_is_refused_for_good(
    accounts: Accounts,
) -> None:
    await accounts.init()
    alice, bob = accounts.fresh_id("alice"), accounts.fresh_id("bob")
    password = await accounts.add_user(alice)
    settings = accounts.settings(alice, alice, password)
    transport = Transport(
        settings.broker_url,
        NAMES,
        alice,
        password=settings.broker_password,
        accounts_mode=True,
    )
    await transport.connect()
    try:
        # A directory event in bob's name: topic permissions allow only one's own.
        forged = Outgoing.directory(DirectoryEvent(event="registered", user_id=bob))
        assert forged.routing_key == directory_user_key(bob)
        with pytest.raises(PublishRefused) as refused:
            await transport.publish(forged)
        assert f"does not let '{alice}' publish to '{forged.routing_key}'" in str(refused.value)
        assert "ACCESS_REFUSED" in str(refused.value)
        # The channel comes back: one's own event still goes out.
        own = Outgoing.directory(DirectoryEvent(event="registered", user_id=alice))
        await _publish_eventually(transport.publish, own)
    finally:
        await transport.close()


async def _publish_eventually(
    publish: Callable[[Outgoing], Awaitable[None]], out: Outgoing
) -> None:
    # The publisher channel reopens after the broker closed it for the refusal.
    last: PublishFailed | None = None
    for _ in range(50):
        try:
            await publish(out)
            return
        except PublishFailed as exc:
            last = exc
            await asyncio.sleep(0.1)
    raise AssertionError(f"own publish never went out: {last}")


class TlsNode(BrokerNode):
    """A private node with a TLS listener too, whose certificate a CA of its own signed
    (made with openssl in the node's folder); `ca_file` is what clients must trust."""

    def _prepare(self) -> None:
        self.tls_port = free_port()
        super()._prepare()
        tls = self.base / "tls"
        tls.mkdir()
        self.ca_file = tls / "ca.pem"

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=tls, check=True, capture_output=True)

        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=chat-tui test CA", "-keyout", "ca.key", "-out", "ca.pem",
        )  # fmt: skip
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr",
        )  # fmt: skip
        (tls / "san.cnf").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
        openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem",
        )  # fmt: skip
        with (self.base / "rabbitmq.conf").open("a") as conf:
            conf.write(
                f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
                f"ssl_options.cacertfile = {tls / 'ca.pem'}\n"
                f"ssl_options.certfile = {tls / 'server.pem'}\n"
                f"ssl_options.keyfile = {tls / 'server.key'}\n"
                "ssl_options.verify = verify_none\n"
                "ssl_options.fail_if_no_peer_cert = false\n"
            )
        owner = pwd.getpwnam(RABBITMQ_USER)
        for path in [tls, *tls.iterdir()]:
            os.chown(path, owner.pw_uid, owner.pw_gid)

    @property
    def tls_url(self) -> str:
        return f"amqps://guest:guest@127.0.0.1:{self.tls_port}/"


@pytest.fixture(scope="module")
def tls_node() -> Iterator[TlsNode]:
    if os.environ.get("CHAT_TUI_TESTS_WITHOUT_BROKER"):
        pytest.fail("this test needs a broker, but it is not marked broker")
    node = TlsNode()
    try:
        node.start()
        yield node
    finally:
        node.destroy()


def _tls_settings(node: TlsNode, tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        user="alice",
        amqp_url=node.tls_url,
        namespace=NAMES.namespace,
        data_dir=tmp_path,
        reconnect_interval=0.5,
        **overrides,
    )


@pytest.mark.broker
async def test_amqps_with_the_ca_file_connects_and_sends(
    tls_node: TlsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_TUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    settings = _tls_settings(tls_node, tmp_path, tls_ca_file=tls_node.ca_file)
    async with ChatClient(settings, RecordingSink()) as client:
        assert await client.wait_online(20), client.status
        await eventually(lambda: knows(client, "alice"), what="alice's registration")
        sent = await client.send(Conversation.dm("alice"), "over TLS")
        change = await client.wait_sent(sent.message_id, timeout=10)
        assert change.status != "failed", change


@pytest.mark.broker
async def test_a_broker_certificate_nobody_vouches_for_is_refused_with_what_to_do(
    tls_node: TlsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_TUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    async with ChatClient(_tls_settings(tls_node, tmp_path), RecordingSink()) as client:
        assert not await client.wait_first_attempt(20)
        refusal = client.fatal_error
        assert refusal is not None, client.status
        assert refusal.startswith(
            f"the certificate of the broker at amqps://guest@127.0.0.1:{tls_node.tls_port}/ "
            "cannot be trusted ("
        ), refusal
        assert "tls_ca_file (CHAT_TUI_TLS_CA_FILE)" in refusal


async def test_a_refused_shared_login_says_the_login_and_the_user_id_differ(
    accounts: Accounts,
) -> None:
    await accounts.init()
    # A shared login the broker does not know, for user carol: open mode.
    settings = accounts.settings("carol", "shared", "not-the-password")
    assert not settings.accounts_mode
    refusal = await _refusal(accounts, settings)
    assert "refused the credentials of 'shared'" in refusal
    assert "the login 'shared' differs from the user ID 'carol'" in refusal
    assert "log in as 'carol', with your own password" in refusal
    # `chat-tui admin passwd` is for one's own account, not for a shared login.
    assert "admin passwd" not in refusal


def _other_ca(tmp_path: Path) -> Path:
    """A CA that signed nothing the TLS node shows."""
    command = (
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca "
        "-keyout other.key -out other.pem"
    )
    subprocess.run(command.split(), cwd=tmp_path, check=True, capture_output=True)
    return tmp_path / "other.pem"


@pytest.mark.broker
async def test_tls_insecure_alone_still_checks_the_certificate(
    tls_node: TlsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_TUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    settings = _tls_settings(tls_node, tmp_path, tls_ca_file=_other_ca(tmp_path), tls_insecure=True)
    async with ChatClient(settings, RecordingSink()) as client:
        assert not await client.wait_first_attempt(20)
        refusal = client.fatal_error
        assert refusal is not None, client.status
        assert "cannot be trusted" in refusal


@pytest.mark.broker
async def test_no_verify_ssl_in_the_url_with_tls_insecure_skips_the_check(
    tls_node: TlsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_TUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    settings = Settings(
        user="alice",
        amqp_url=f"{tls_node.tls_url}?no_verify_ssl=1",
        namespace=NAMES.namespace,
        data_dir=tmp_path,
        reconnect_interval=0.5,
        tls_ca_file=_other_ca(tmp_path),
        tls_insecure=True,
    )
    async with ChatClient(settings, RecordingSink()) as client:
        assert await client.wait_online(20), client.status
