"""The core's own logic, on an in-memory broker: no RabbitMQ, so these run in the fast
loop. The same behaviours are proven against the real broker in the other suites."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.core.errors import NotAMemberError
from chat_tui.core.status import ConnectionState
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.names import Names
from tests.conftest import RecordingSink, eventually
from tests.memory_transport import MemoryBroker, MemoryTransport

NAMESPACE = "mem"


class MemoryWorld:
    def __init__(self, data_dir: Path) -> None:
        self.broker = MemoryBroker(Names(NAMESPACE))
        self.data_dir = data_dir
        self.clients: list[ChatClient] = []
        self.links: dict[str, MemoryTransport] = {}

    async def client(self, user: str, *, online: bool = True) -> ChatClient:
        settings = Settings(
            user=user,
            namespace=NAMESPACE,
            data_dir=self.data_dir,
            amqp_url="amqp://unused@127.0.0.1:1/",
            reconnect_interval=0.05,
        )
        link = self.broker.transport(user)
        self.links[user] = link
        client = ChatClient(settings, RecordingSink(), transport=link)
        await client.start()
        self.clients.append(client)
        if online:
            assert await client.wait_online(5), f"{user} did not come online"
            assert await client.wait_directory(5)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.stop()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[MemoryWorld]:
    made = MemoryWorld(tmp_path)
    yield made
    await made.close()


def sink_of(client: ChatClient) -> RecordingSink:
    assert isinstance(client.sink, RecordingSink)
    return client.sink


async def test_a_direct_message_is_shown_once_and_its_sender_sees_it_read(
    world: MemoryWorld,
) -> None:
    bob = await world.client("bob")
    alice = await world.client("alice")
    await eventually(lambda: _knows(alice, "bob"), what="alice knows bob")
    sent = await alice.send(Conversation.dm("bob"), "hello bob")
    await eventually(lambda: sink_of(bob).contents() == ["hello bob"], what="bob sees it")
    shown = sink_of(bob).shown[0]
    await bob.mark_read(shown.conversation, shown.seq)
    await eventually(lambda: _status_of(alice, sent.message_id, "read"), what="alice sees it read")
    assert sink_of(bob).contents() == ["hello bob"]


async def test_messages_typed_while_the_link_is_down_go_out_in_order_when_it_returns(
    world: MemoryWorld,
) -> None:
    bob = await world.client("bob")
    alice = await world.client("alice")
    await eventually(lambda: _knows(alice, "bob"), what="alice knows bob")
    world.links["alice"].cut()
    await eventually(lambda: not alice.online, what="alice offline")
    assert alice.status.state is ConnectionState.RECONNECTING
    for text in ("one", "two", "three"):
        await alice.send(Conversation.dm("bob"), text)
    assert alice.status.unsent_messages == 3
    await world.links["alice"].restore()
    await eventually(
        lambda: sink_of(bob).contents() == ["one", "two", "three"], what="bob has all three"
    )
    assert await alice.flush(5)
    await eventually(lambda: alice.status.unsent_messages == 0, what="nothing unsent")


async def test_a_nacked_publish_is_retried_and_received_once(world: MemoryWorld) -> None:
    bob = await world.client("bob")
    alice = await world.client("alice")
    await eventually(lambda: _knows(alice, "bob"), what="alice knows bob")
    world.broker.nacks_to_come = 1
    sent = await alice.send(Conversation.dm("bob"), "despite the nacks")
    change = await alice.wait_sent(sent.message_id, timeout=10)
    assert change.status in ("sent", "delivered")
    await eventually(lambda: sink_of(bob).contents() == ["despite the nacks"], what="delivered")
    assert await alice.flush(5)
    assert sink_of(bob).contents() == ["despite the nacks"]


async def test_a_publish_cancelled_under_the_outbox_is_retried_without_an_error(
    world: MemoryWorld, caplog: pytest.LogCaptureFixture
) -> None:
    bob = await world.client("bob")
    alice = await world.client("alice")
    await eventually(lambda: _knows(alice, "bob"), what="alice knows bob")
    world.broker.cancels_to_come = 1
    sent = await alice.send(Conversation.dm("bob"), "after a cancel")
    await alice.wait_sent(sent.message_id, timeout=10)
    await eventually(lambda: sink_of(bob).contents() == ["after a cancel"], what="delivered")
    assert world.broker.cancels_to_come == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_directory_is_folded_while_the_rest_of_the_set_up_waits(
    world: MemoryWorld,
) -> None:
    await world.client("alice")
    world.broker.unanswered_consumes.add(Names(NAMESPACE).receipts_queue("bob"))
    bob = await world.client("bob", online=False)
    # The directory is consumed first; its follower must not wait for the consumes after.
    await eventually(lambda: _knows(bob, "alice"), what="bob folds the directory")
    assert not bob.online


async def test_a_group_reaches_its_members_and_refuses_a_stranger(world: MemoryWorld) -> None:
    alice = await world.client("alice")
    await alice.create_group("team")
    bob = await world.client("bob")
    await bob.join_group("team")
    carol = await world.client("carol")
    await eventually(lambda: _is_member(alice, "team", "bob"), what="alice sees bob join")
    await alice.send(Conversation.group("team"), "standup")
    await eventually(lambda: sink_of(bob).contents() == ["standup"], what="bob gets it")
    with pytest.raises(NotAMemberError):
        await carol.send(Conversation.group("team"), "let me in")
    assert sink_of(alice).contents() == []


async def test_stop_leaves_no_client_task_running(world: MemoryWorld) -> None:
    before = asyncio.all_tasks()
    alice = await world.client("alice")
    await alice.send(Conversation.dm("alice"), "a note to self")
    world.clients.remove(alice)
    await alice.stop()
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() - before if not t.done()] == []


async def _knows(client: ChatClient, user: str) -> bool:
    return user in await client.cache.users()


async def _is_member(client: ChatClient, group: str, user: str) -> bool:
    return user in await client.members(group)


async def _status_of(client: ChatClient, message_id: str, status: str) -> bool:
    message = await client.store.get_message(message_id)
    return message is not None and message.status == status


async def test_a_refused_login_is_told_to_the_user_and_not_retried(world: MemoryWorld) -> None:
    world.broker.refused_users.add("mallory")
    mallory = await world.client("mallory", online=False)
    assert not await mallory.wait_first_attempt(5)
    assert mallory.fatal_error is not None
    assert mallory.status.refused == mallory.fatal_error
    assert sink_of(mallory).problems == [mallory.fatal_error]
    assert mallory.status.state is ConnectionState.OFFLINE


async def test_a_publish_the_broker_refuses_fails_with_the_refusal_not_unknown_user(
    world: MemoryWorld,
) -> None:
    await world.client("bob")
    alice = await world.client("alice")
    await eventually(lambda: _knows(alice, "bob"), what="alice knows bob")
    world.broker.refused_keys.add("user.bob")
    sent = await alice.send(Conversation.dm("bob"), "not allowed")
    change = await alice.wait_sent(sent.message_id, timeout=5)
    assert change.status == "failed"
    assert change.error is not None and "does not let 'alice' publish" in change.error
    assert any("does not let 'alice' publish" in p for p in sink_of(alice).problems)


async def test_wait_refused_returns_what_was_refused(world: MemoryWorld) -> None:
    world.broker.refused_users.add("mallory")
    mallory = await world.client("mallory", online=False)
    async with asyncio.timeout(5):
        refusal = await mallory.wait_refused()
    assert refusal == mallory.fatal_error
