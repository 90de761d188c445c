"""The normal flows in accounts mode, on the managed node with accounts provisioned by
`chat-tui admin`: a fresh account registers on its first start; groups are created,
joined and left; DMs and group messages are delivered and read, with their receipts;
an offline user gets the backlog; and the clients come back after a broker restart.
Every receiver verifies its senders here, and none of these honest messages may fail
the check."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.names import group_key
from tests.accounts.node import ManagedNode
from tests.accounts.provisioning import AccountsDeployment, shown, status_of
from tests.conftest import RecordingSink, eventually, has_group, knows, members_are


def assert_all_verified(clients: Iterable[ChatClient]) -> None:
    """No honest message was taken for a forgery by any receiver."""
    for client in clients:
        counted = (
            client.inbox.counters.rejected,
            client.receipts.unverified,
            client.receipts.rejected,
            client.directory.unverified,
            client.directory.invalid,
        )
        assert counted == (0, 0, 0, 0, 0), client.me


async def status_becomes(client: ChatClient, message_id: str, status: str) -> None:
    async def reached() -> bool:
        return (await status_of(client, message_id))[0] == status

    await eventually(reached, what=f"{client.me}'s message {status}")


async def read_everything(client: ChatClient, conversation: Conversation) -> None:
    """What a face does once it showed the conversation: mark it read to its end."""
    history = await client.cache.history(conversation)
    await client.mark_read(conversation, history[-1].seq)


async def test_a_fresh_account_registers_on_its_first_start(
    accounts: AccountsDeployment,
) -> None:
    alice_account, erin_account = accounts.add_user("alice"), accounts.add_user("erin")
    alice = await accounts.client(alice_account)
    assert erin_account.user not in await alice.cache.users()
    # add-user made erin's queues, so this start finds nothing new and must register.
    erin = await accounts.client(erin_account)
    await eventually(lambda: knows(alice, erin.me), what="alice sees erin registered")
    await eventually(lambda: knows(erin, alice.me, erin.me), what="erin's directory")
    assert await erin.flush(10)
    assert_all_verified([alice, erin])


async def test_a_dm_is_delivered_and_read_with_its_receipts(
    accounts: AccountsDeployment,
) -> None:
    alice_account, bob_account = accounts.add_user("alice"), accounts.add_user("bob")
    bob = await accounts.client(bob_account)
    alice = await accounts.client(alice_account)
    await eventually(lambda: knows(alice, bob.me), what="alice knows bob")

    sent = await alice.send(Conversation.dm(bob.me), "hello bob, with accounts")
    await eventually(lambda: "hello bob, with accounts" in shown(bob), what="bob's DM")
    await status_becomes(alice, sent.message_id, "delivered")
    await read_everything(bob, Conversation.dm(alice.me))
    await status_becomes(alice, sent.message_id, "read")
    assert await status_of(alice, sent.message_id) == ("read", 1, 1)

    reply = await bob.send(Conversation.dm(alice.me), "hello alice")
    await eventually(lambda: "hello alice" in shown(alice), what="alice's DM")
    await status_becomes(bob, reply.message_id, "delivered")
    (received,) = [m for m in await alice.cache.history(Conversation.dm(bob.me)) if not m.outgoing]
    assert (received.sender_id, received.content) == (bob.me, "hello alice")
    assert_all_verified([alice, bob])


async def test_groups_are_created_joined_messaged_read_and_left(
    accounts: AccountsDeployment,
) -> None:
    alice_account, bob_account, carol_account = (
        accounts.add_user("alice"),
        accounts.add_user("bob"),
        accounts.add_user("carol"),
    )
    alice = await accounts.client(alice_account)
    bob = await accounts.client(bob_account)
    carol = await accounts.client(carol_account)
    group = "devs"
    await alice.create_group(group)
    for member in (bob, carol):
        await eventually(lambda m=member: has_group(m, group), what=f"{member.me} sees the group")
        await member.join_group(group)
    for client in (alice, bob, carol):
        await eventually(
            lambda c=client: members_are(c, group, alice.me, bob.me, carol.me),
            what=f"{client.me}'s members",
        )

    conversation = Conversation.group(group)
    sent = await alice.send(conversation, "standup at ten")
    for member in (bob, carol):
        await eventually(lambda m=member: "standup at ten" in shown(m), what=f"{member.me}'s copy")
    await status_becomes(alice, sent.message_id, "delivered")
    assert await status_of(alice, sent.message_id) == ("delivered", 2, 0)
    await read_everything(bob, conversation)
    await eventually(
        lambda: _counts_are(alice, sent.message_id, ("delivered", 2, 1)), what="read 1/2"
    )
    await read_everything(carol, conversation)
    await status_becomes(alice, sent.message_id, "read")
    assert await status_of(alice, sent.message_id) == ("read", 2, 2)

    await carol.leave_group(group)
    for client in (alice, bob):
        await eventually(
            lambda c=client: members_are(c, group, alice.me, bob.me), what=f"{client.me} sees"
        )
    assert group_key(group) not in await accounts.binding_keys(accounts.names.inbox_queue(carol.me))
    after = await bob.send(conversation, "carol has left")
    await eventually(lambda: "carol has left" in shown(alice), what="alice's copy")
    await status_becomes(bob, after.message_id, "delivered")
    assert "carol has left" not in shown(carol)
    assert_all_verified([alice, bob, carol])


async def _counts_are(client: ChatClient, message_id: str, wanted: tuple[str, int, int]) -> bool:
    return await status_of(client, message_id) == wanted


async def test_an_offline_user_gets_the_backlog_in_order(accounts: AccountsDeployment) -> None:
    alice_account, bob_account = accounts.add_user("alice"), accounts.add_user("bob")
    bob = await accounts.client(bob_account)
    alice = await accounts.client(alice_account)
    await eventually(lambda: knows(alice, bob.me), what="alice knows bob")
    await accounts.stop(bob)

    texts = [f"backlog {i}" for i in range(30)]
    for text in texts:
        await alice.send(Conversation.dm(bob_account.user), text)
    assert await alice.flush(20)

    bob = await accounts.client(bob_account)
    await eventually(lambda: len(shown(bob)) == len(texts), what="bob's backlog")
    assert shown(bob) == texts
    history = await bob.cache.history(Conversation.dm(alice.me))
    assert [m.content for m in history] == texts
    assert_all_verified([alice, bob])


async def test_clients_come_back_after_a_broker_restart(
    accounts: AccountsDeployment, managed_node: ManagedNode
) -> None:
    alice_account, bob_account = accounts.add_user("alice"), accounts.add_user("bob")
    bob = await accounts.client(bob_account)
    alice = await accounts.client(alice_account)
    await eventually(lambda: knows(alice, bob.me), what="alice knows bob")

    await asyncio.to_thread(managed_node.stop)
    await eventually(lambda: not alice.online and not bob.online, what="both see it gone")
    # Queued while the broker is down, published once it is back.
    queued = await alice.send(Conversation.dm(bob.me), "sent while the broker was down")
    await asyncio.to_thread(managed_node.start)
    for client in (alice, bob):
        assert await client.wait_online(60), f"{client.me}: {client.status}"
        assert client.fatal_error is None
    await eventually(
        lambda: "sent while the broker was down" in shown(bob), timeout=30, what="the queued DM"
    )
    await status_becomes(alice, queued.message_id, "delivered")

    again = await bob.send(Conversation.dm(alice.me), "and after it")
    await eventually(lambda: "and after it" in shown(alice), what="bob's reply")
    await status_becomes(bob, again.message_id, "delivered")
    for client in (alice, bob):
        sink = client.sink
        assert isinstance(sink, RecordingSink)
        assert sink.problems == [], sink.problems
    assert_all_verified([alice, bob])
