"""The archive service in a deployment with accounts, on a private node with the
management plugin: `chat-tui admin init` and `add-archive` set it up, the archive logs
in with its own account, and its users publish and ask with theirs (plain aio-pika).

What the broker proves (the AMQP user_id is the publisher's login) the archive holds
the bodies to: a message whose sender_id is someone else is dead-lettered, a request
whose requester_id is someone else is refused, so nobody reads another's DMs."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from chat_tui.archive.database import ConversationRef, open_archive_database
from chat_tui.archive.service import serve
from chat_tui.config import CONFIG_FILE_ENV, Settings
from chat_tui.core.errors import ChatError
from chat_tui.protocol.archive import (
    ArchiveAnswer,
    ArchiveRefusal,
    ArchiveRequest,
    HistoryPage,
    HistoryRequest,
    SearchRequest,
    SearchResults,
    decode_answer,
)
from chat_tui.protocol.models import DirectoryEvent, SendMessage
from chat_tui.protocol.names import ARCHIVE_REQUEST_KEY
from chat_tui.protocol.permissions import archive_login
from tests.accounts.node import ManagedNode
from tests.accounts.provisioning import Account, AccountsDeployment, Admin
from tests.archive.service_world import REPLY_TO, chat, routing_key_of
from tests.conftest import eventually

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def node() -> Iterator[ManagedNode]:
    if os.environ.get("CHAT_TUI_TESTS_WITHOUT_BROKER"):
        pytest.fail("this test needs a broker, but it is not marked broker")
    node = ManagedNode()
    try:
        node.start()
        yield node
    finally:
        node.destroy()


@dataclass
class Deployment:
    accounts: AccountsDeployment
    archive: Account
    alice: Account
    bob: Account
    eve: Account
    archive_db: str

    @property
    def settings(self) -> Settings:
        admin = self.accounts.admin
        return Settings(
            amqp_url=self.accounts.node.amqp_url(
                self.archive.user, self.archive.password, admin.vhost
            ),
            namespace=admin.names.namespace,
            data_dir=admin.data_dir,
            archive_db=self.archive_db,
            reconnect_interval=0.5,
        )

    async def publish(
        self, account: Account, body: bytes, routing_key: str, **properties: Any
    ) -> None:
        login = await self.accounts.login(account)
        channel = await login.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(self.accounts.names.messages_exchange, ensure=False)
        await exchange.publish(aio_pika.Message(body, **properties), routing_key)
        await channel.close()

    async def send(self, account: Account, message: SendMessage) -> None:
        await self.publish(
            account, message.to_body(), routing_key_of(message), user_id=account.user
        )

    async def announce(self, account: Account, *groups: str) -> None:
        """What the user's client publishes: registered, then joined."""
        events = [DirectoryEvent(event="registered", user_id=account.user)]
        events += [DirectoryEvent(event="joined", user_id=account.user, group_id=g) for g in groups]
        for event in events:
            await self.publish(account, event.to_body(), event.routing_key, user_id=account.user)

    async def ask(
        self, account: Account, request: ArchiveRequest
    ) -> tuple[ArchiveAnswer, str | None]:
        """The answer, and the AMQP user_id it came with."""
        login: AbstractConnection = await self.accounts.login(account)
        channel = await login.channel()
        answered: asyncio.Future[AbstractIncomingMessage] = (
            asyncio.get_running_loop().create_future()
        )

        async def on_reply(message: AbstractIncomingMessage) -> None:
            if not answered.done():
                answered.set_result(message)

        replies = await channel.get_queue(REPLY_TO, ensure=False)
        await replies.consume(on_reply, no_ack=True)
        exchange = await channel.get_exchange(self.accounts.names.messages_exchange, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                request.to_body(),
                reply_to=REPLY_TO,
                correlation_id=uuid.uuid4().hex,
                user_id=account.user,
            ),
            ARCHIVE_REQUEST_KEY,
        )
        reply = await asyncio.wait_for(answered, 10)
        await channel.close()
        return decode_answer(reply.body), reply.user_id


@pytest.fixture(scope="module")
def provisioned(
    node: ManagedNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """A vhost after `admin init`, `add-archive` and three users, for the module (the
    admin commands take seconds each); every test gets an archive database of its own."""
    vhost = f"v{uuid.uuid4().hex[:10]}"
    node.add_vhost(vhost)
    data_dir = tmp_path_factory.mktemp("archive-accounts")
    admin = Admin(node, vhost, data_dir)
    with pytest.MonkeyPatch.context() as env:
        env.setenv(CONFIG_FILE_ENV, str(data_dir / "no-config.toml"))
        admin.ok("init")
        login = archive_login(admin.names)
        admin.accounts.add(login)
        lines = admin.ok("add-archive")
        (line,) = [each for each in lines if each.startswith(f"password of {login} (shown once): ")]
        accounts = AccountsDeployment(admin)
        alice, bob, eve = (accounts.add_user(stem) for stem in ("alice", "bob", "eve"))
        try:
            yield Deployment(
                accounts, Account(login, line.rsplit(" ", 1)[1]), alice, bob, eve, archive_db=""
            )
        finally:
            for user in admin.accounts:
                node.delete_user(user)
            node.delete_vhost(vhost)


@pytest.fixture
async def deployment(
    provisioned: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Deployment]:
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "no-config.toml"))
    provisioned.archive_db = str(tmp_path / "archive.sqlite3")
    try:
        yield provisioned
    finally:
        await provisioned.accounts.stop_all()


@pytest.fixture
async def running(deployment: Deployment) -> AsyncIterator[Deployment]:
    """The deployment with one archive worker, in accounts mode."""
    stop = asyncio.Event()
    worker = asyncio.create_task(serve(deployment.settings, stop))
    names = deployment.accounts.names

    async def consuming() -> bool:
        queue = await deployment.accounts.queue(names.archive_requests_queue)
        return bool(queue.get("consumers"))

    try:
        await eventually(consuming, what="the archive to consume", timeout=20)
        yield deployment
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)


async def lobby_contents(deployment: Deployment) -> list[str]:
    """What the archive holds of #lobby, read straight from its database."""
    database = open_archive_database(deployment.archive_db)
    await database.open()
    try:
        messages, _ = await database.history(ConversationRef.group("lobby"), None, "newer", 200)
        return [m.content for m in messages]
    finally:
        await database.close()


async def test_a_forged_sender_is_dead_lettered_and_a_genuine_one_stored(
    running: Deployment,
) -> None:
    alice, bob = running.alice, running.bob
    genuine = chat(alice.user, group="lobby", content="from alice")
    forged = chat(bob.user, group="lobby", content="bob never said this")
    await running.send(alice, genuine)
    # alice's login publishes a body that names bob as its sender; the broker lets
    # her (the user_id is hers), the archive does not.
    await running.publish(alice, forged.to_body(), routing_key_of(forged), user_id=alice.user)
    # And one with no user_id at all: nothing proves who sent it.
    anonymous = chat(alice.user, group="lobby", content="who sent this?")
    await running.publish(alice, anonymous.to_body(), routing_key_of(anonymous))

    async def two_dead() -> bool:
        return len(await running.accounts.dead_letters()) == 2

    await eventually(two_dead, what="the forged and the anonymous message dead-lettered")
    dead = await running.accounts.dead_letters()
    assert {letter.body["content"] for letter in dead} == {forged.content, anonymous.content}
    assert await lobby_contents(running) == ["from alice"]


async def test_requests_are_answered_as_the_account_that_asks(running: Deployment) -> None:
    alice, bob, eve = running.alice, running.bob, running.eve
    await running.announce(alice, "lobby")
    await running.announce(bob, "lobby")
    await running.announce(eve)
    await running.send(alice, chat(alice.user, group="lobby", content="hello lobby"))
    await running.send(alice, chat(alice.user, to=bob.user, content="a secret for bob"))

    async def archived() -> bool:
        return await lobby_contents(running) == ["hello lobby"]

    await eventually(archived, what="the lobby message archived")
    page, sent_by = await running.ask(
        bob, HistoryRequest(requester_id=bob.user, peer_id=alice.user)
    )
    assert isinstance(page, HistoryPage)
    assert [m.content for m in page.messages] == ["a secret for bob"]
    # The answer comes from the archive's own account: the broker checked it.
    assert sent_by == running.archive.user
    # eve, logged in as herself, claims to be bob to read his DMs with alice.
    refused, _ = await running.ask(eve, HistoryRequest(requester_id=bob.user, peer_id=alice.user))
    assert isinstance(refused, ArchiveRefusal) and refused.reason == "forbidden"
    refused, _ = await running.ask(eve, SearchRequest(requester_id=alice.user, query="secret"))
    assert isinstance(refused, ArchiveRefusal) and refused.reason == "forbidden"
    # As herself she reads only what is hers: her DMs with alice (none), no #lobby.
    own, _ = await running.ask(eve, HistoryRequest(requester_id=eve.user, peer_id=alice.user))
    assert isinstance(own, HistoryPage) and own.messages == ()
    found, _ = await running.ask(eve, SearchRequest(requester_id=eve.user, query="secret lobby"))
    assert isinstance(found, SearchResults) and found.hits == ()
    lobby, _ = await running.ask(eve, HistoryRequest(requester_id=eve.user, group_id="lobby"))
    assert isinstance(lobby, ArchiveRefusal) and lobby.reason == "forbidden"


async def test_a_new_archive_password_stops_the_running_worker_with_what_to_do(
    deployment: Deployment,
) -> None:
    # Last in the module: the archive's password changes for good.
    stop = asyncio.Event()
    worker = asyncio.create_task(serve(deployment.settings, stop))
    names = deployment.accounts.names

    async def consuming() -> bool:
        queue = await deployment.accounts.queue(names.archive_requests_queue)
        return bool(queue.get("consumers"))

    await eventually(consuming, what="the archive to consume", timeout=20)
    admin = deployment.accounts.admin
    new_password = "a-new-password-for-the-archive"
    await asyncio.to_thread(
        admin.ok, "passwd", deployment.archive.user, "--password-stdin", stdin=new_password
    )
    # passwd closes the archive's connections; its reconnects are refused, and it ends.
    with pytest.raises(ChatError, match="add-archive"):
        await asyncio.wait_for(worker, 30)
    deployment.archive = Account(deployment.archive.user, new_password)
