"""Every attack of issue 10, attempted by one provisioned account (mallory, plain
aio-pika with her own login) against the others (bob, alice, carol: real clients in
accounts mode), on the managed node. Each is stopped: by the broker, whose exact
refusal is asserted, or by the receiver, whose verdict (dead-lettered, ignored, skipped)
is asserted with its counter and, for a dead letter, the copy in `NS.dead-letters`. The
victim's cache and screen are then as they were. Each attempt is a row of the table the
session prints (tests/accounts/attack_table.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelAccessRefused, ChannelClosed, ChannelPreconditionFailed

from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import DirectoryEvent, ReceiveMessage, SendMessage, WireMessage
from chat_tui.protocol.names import (
    directory_group_key,
    directory_user_key,
    group_key,
    receipt_key,
    user_key,
)
from chat_tui.protocol.queues import personal_queue_arguments
from tests.accounts.attack_table import AttackLog
from tests.accounts.provisioning import Account, AccountsDeployment, shown, status_of
from tests.conftest import eventually, has_group, is_member, knows, members_are

P = ParamSpec("P")


@dataclass(frozen=True)
class Cast:
    bob: Account
    alice: Account
    carol: Account
    mallory: Account


@pytest.fixture(scope="module")
def provisioned_cast(provisioned: AccountsDeployment) -> Cast:
    """The module's accounts, provisioned once with `chat-tui admin add-user`."""
    return Cast(*(provisioned.add_user(stem) for stem in ("bob", "alice", "carol", "mallory")))


@pytest.fixture
async def cast(accounts: AccountsDeployment, provisioned_cast: Cast) -> Cast:
    """The accounts, each registered in the directory by a first start of its client
    (mallory's too: a member of the deployment, not a stranger), so that any test can
    DM anyone who is offline."""
    users = [provisioned_cast.bob, provisioned_cast.alice, provisioned_cast.carol]
    everyone = [*users, provisioned_cast.mallory]
    if provisioned_cast not in _REGISTERED:
        clients = [await accounts.client(account) for account in everyone]
        for client in clients:
            await eventually(
                lambda c=client: knows(c, *(a.user for a in everyone)),
                what=f"{client.me} knows all",
            )
        for client in clients:
            await accounts.stop(client)
        _REGISTERED.append(provisioned_cast)
    return provisioned_cast


_REGISTERED: list[Cast] = []


# --- the attacker's tools: plain aio-pika ---------------------------------------------


async def refusal(
    login: AbstractConnection,
    attempt: Callable[Concatenate[AbstractChannel, P], Awaitable[Any]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> ChannelClosed:
    """What the broker answered `attempt(channel, *args, **kwargs)`, made on a fresh
    channel (a refusal closes the channel it happened on)."""
    channel = await login.channel()
    try:
        await attempt(channel, *args, **kwargs)
    except ChannelClosed as refused:
        return refused
    finally:
        if not channel.is_closed:
            await channel.close()
    raise AssertionError("the broker allowed it")


def access_refused(accounts: AccountsDeployment, account: Account, what: str) -> str:
    """RabbitMQ's text for a vhost permission it refused, `what` being `queue 'x'`."""
    return (
        f"ACCESS_REFUSED - access to {what} in vhost '{accounts.admin.vhost}' "
        f"refused for user '{account.user}'"
    )


def topic_refused(accounts: AccountsDeployment, account: Account, key: str) -> str:
    """RabbitMQ's text for a topic permission (read or write) it refused."""
    return (
        f"ACCESS_REFUSED - access to topic '{key}' in exchange "
        f"'{accounts.names.messages_exchange}' in vhost '{accounts.admin.vhost}' "
        f"refused for user '{account.user}'"
    )


def assert_refused(refused: ChannelClosed, kind: type[ChannelClosed], text: str) -> None:
    assert (type(refused), refused.args[0]) == (kind, text)


def assert_queue_refused(
    accounts: AccountsDeployment, account: Account, refused: ChannelClosed, queue: str
) -> None:
    assert_refused(
        refused, ChannelAccessRefused, access_refused(accounts, account, f"queue '{queue}'")
    )


async def publish(
    channel: AbstractChannel,
    accounts: AccountsDeployment,
    routing_key: str,
    message: WireMessage,
    user_id: str | None,
) -> None:
    """Publish a well-formed body to `NS.messages`, as any AMQP client can, and wait
    for the broker's confirm."""
    exchange = await channel.get_exchange(accounts.names.messages_exchange, ensure=False)
    await exchange.publish(
        aio_pika.Message(
            message.to_body(),
            user_id=user_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(uuid.uuid4()),
        ),
        routing_key=routing_key,
    )


async def forge(
    login: AbstractConnection,
    accounts: AccountsDeployment,
    routing_key: str,
    message: WireMessage,
    user_id: str | None,
) -> None:
    """A forgery the broker lets through (it routes what the account may write)."""
    channel = await login.channel()
    try:
        await publish(channel, accounts, routing_key, message, user_id)
    finally:
        await channel.close()


def dm(
    sender: Account, recipient: Account, content: str, message_id: str | None = None
) -> SendMessage:
    return SendMessage(
        message_id=uuid.UUID(message_id) if message_id else uuid.uuid4(),
        sender_id=sender.user,
        recipient_id=recipient.user,
        content=content,
    )


def read_receipt(recipient: str, message_id: str) -> ReceiveMessage:
    return ReceiveMessage(recipient_id=recipient, message_id=uuid.UUID(message_id), status="read")


async def forge_read(
    login: AbstractConnection,
    accounts: AccountsDeployment,
    sender: Account,
    recipient: str,
    message_id: str,
    user_id: str | None,
) -> None:
    """A `read` receipt for `sender`'s message, in `recipient`'s name."""
    receipt = read_receipt(recipient, message_id)
    await forge(login, accounts, receipt_key(sender.user), receipt, user_id)


# --- what the victims see --------------------------------------------------------------


async def cache_state(client: ChatClient) -> dict[str, Any]:
    """Everything a face reads from the cache: conversations, their histories with each
    message's sender and status, the users, the groups and their members."""
    conversations = await client.cache.conversations()
    groups = await client.cache.groups()
    return {
        "conversations": conversations,
        "histories": {
            c.conversation.key: [
                (m.message_id, m.sender_id, m.content, m.status, m.read_count)
                for m in await client.cache.history(c.conversation)
            ]
            for c in conversations
        },
        "users": await client.cache.users(),
        "members": {group: await client.cache.members(group) for group in groups},
    }


async def dead_lettered(accounts: AccountsDeployment, content: str) -> list[tuple[str, str | None]]:
    """The routing key and publisher's user_id of each dead letter with this content."""
    return [
        (letter.routing_key, letter.user_id)
        for letter in await accounts.dead_letters()
        if letter.body.get("content") == content
    ]


async def sent_dm(sender: ChatClient, to: Account, text: str) -> str:
    """A real DM, confirmed by the broker; its message ID."""
    stored = await sender.send(Conversation.dm(to.user), text)
    change = await sender.wait_sent(stored.message_id, timeout=10)
    assert change.status != "failed", change
    return stored.message_id


async def group_of(accounts: AccountsDeployment, founder: ChatClient, *joining: ChatClient) -> str:
    """A group the founder created and the others joined, known to all of them."""
    group = f"g{uuid.uuid4().hex[:8]}"
    await founder.create_group(group)
    for member in joining:
        await eventually(lambda m=member: has_group(m, group), what=f"{member.me} sees {group}")
        await member.join_group(group)
    everyone = [founder.me, *(m.me for m in joining)]
    for client in (founder, *joining):
        await eventually(
            lambda c=client: members_are(c, group, *everyone), what=f"{client.me}'s members"
        )
    return group


# --- the attacks -------------------------------------------------------------------------


async def test_1_no_account_can_bind_a_queue_to_someone_elses_dms(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    names, mallory, bob = accounts.names, cast.mallory, cast.bob
    login = await accounts.login(mallory)
    own_inbox = names.inbox_queue(mallory.user)
    spy = f"{names.namespace}.spy"

    with attacks.attempt(
        "1a",
        "mallory declares a queue of her own, to bind it to user.bob",
        "broker: vhost configure ^$",
        "403 ACCESS_REFUSED",
    ):
        refused = await refusal(login, lambda ch: ch.declare_queue(spy, durable=True))
        assert_refused(
            refused, ChannelAccessRefused, access_refused(accounts, mallory, f"queue '{spy}'")
        )

    for number, key, label in (("1b", user_key(bob.user), "user.bob"), ("1c", "#", "#")):
        with attacks.attempt(
            number,
            f"mallory binds her own inbox to {label}",
            "broker: topic read permission",
            "403 ACCESS_REFUSED",
        ):
            refused = await refusal(login, _bind, own_inbox, names.messages_exchange, key)
            assert_refused(refused, ChannelAccessRefused, topic_refused(accounts, mallory, key))
            assert await accounts.binding_keys(own_inbox) == {user_key(mallory.user)}

    own_receipts = names.receipts_queue(mallory.user)
    with attacks.attempt(
        "1d",
        "mallory binds her own receipts queue to receipt.bob",
        "broker: topic read permission",
        "403 ACCESS_REFUSED",
    ):
        key = receipt_key(bob.user)
        refused = await refusal(
            login, lambda ch: _bind(ch, own_receipts, names.messages_exchange, key)
        )
        assert_refused(refused, ChannelAccessRefused, topic_refused(accounts, mallory, key))
        assert await accounts.binding_keys(own_receipts) == {receipt_key(mallory.user)}

    with attacks.attempt(
        "1",
        "(after 1a-1d) alice DMs bob: does mallory get a copy?",
        "her queues are bound to her own keys only",
        "bob alone has it",
    ):
        alice_client = await accounts.client(cast.alice)
        bob_client = await accounts.client(bob)
        await sent_dm(alice_client, bob, "attack 1: for bob alone")
        await eventually(lambda: "attack 1: for bob alone" in shown(bob_client), what="bob's DM")
        channel = await login.channel()
        for queue in (own_inbox, own_receipts):
            declared = await channel.get_queue(queue, ensure=False)
            assert await declared.get(fail=False) is None


async def _bind(channel: AbstractChannel, queue: str, exchange: str, key: str) -> None:
    declared = await channel.get_queue(queue, ensure=False)
    await declared.bind(exchange, routing_key=key)


async def _unbind(channel: AbstractChannel, queue: str, exchange: str, key: str) -> None:
    declared = await channel.get_queue(queue, ensure=False)
    await declared.unbind(exchange, routing_key=key)


async def test_2_no_account_can_consume_someone_elses_inbox_or_receipts(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    names, mallory, bob = accounts.names, cast.mallory, cast.bob
    alice_client = await accounts.client(cast.alice)
    waiting = await sent_dm(alice_client, bob, "attack 2: waits for bob")  # bob is offline
    login = await accounts.login(mallory)

    for number, queue, how, label in (
        ("2a", names.inbox_queue(bob.user), "consume", "NS.inbox.bob"),
        ("2b", names.inbox_queue(bob.user), "get", "NS.inbox.bob (basic.get)"),
        ("2c", names.receipts_queue(bob.user), "consume", "NS.receipts.bob"),
    ):
        with attacks.attempt(
            number,
            f"mallory consumes {label}",
            "broker: vhost read permission",
            "403 ACCESS_REFUSED",
        ):
            refused = await refusal(login, _take, queue, how)
            assert_queue_refused(accounts, mallory, refused, queue)

    with attacks.attempt(
        "2",
        "(after 2a-2c) the DM that waited in bob's inbox",
        "it stayed in bob's inbox",
        "bob's client receives it; alice sees delivered, not read",
    ):
        bob_client = await accounts.client(bob)
        await eventually(lambda: "attack 2: waits for bob" in shown(bob_client), what="bob's DM")
        await eventually(
            lambda: _status_is(alice_client, waiting, "delivered"), what="alice sees delivered"
        )


async def _take(channel: AbstractChannel, queue: str, how: str) -> None:
    declared = await channel.get_queue(queue, ensure=False)
    if how == "get":
        await declared.get(fail=False)
    else:
        await declared.consume(_keep)


async def _keep(message: AbstractIncomingMessage) -> None:
    await message.ack()


async def _status_is(client: ChatClient, message_id: str, status: str) -> bool:
    return (await status_of(client, message_id))[0] == status


async def test_3_a_changed_text_under_an_existing_message_id_is_dead_lettered(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    mallory, bob, alice = cast.mallory, cast.bob, cast.alice
    alice_client = await accounts.client(alice)
    original = "attack 3: the original"
    message_id = await sent_dm(alice_client, bob, original)  # bob is offline
    login = await accounts.login(mallory)
    forged = "attack 3: the forgery"

    with attacks.attempt(
        "3",
        "mallory republishes alice's DM to bob with a changed text, same message_id",
        "bob's client: user_id must be the sender_id",
        "dead-lettered; bob keeps the original; alice's not read",
    ):
        await forge(
            login, accounts, user_key(bob.user), dm(alice, bob, forged, message_id), mallory.user
        )
        bob_client = await accounts.client(bob)
        await eventually(lambda: bob_client.inbox.counters.unverified == 1, what="bob's verdict")
        assert await dead_lettered(accounts, forged) == [(user_key(bob.user), mallory.user)]
        history = await bob_client.cache.history(Conversation.dm(alice.user))
        assert [m.content for m in history if m.message_id == message_id] == [original]
        assert forged not in [m.content for m in history]
        assert forged not in shown(bob_client)
        await eventually(
            lambda: _status_is(alice_client, message_id, "delivered"), what="delivered"
        )
        assert (await status_of(alice_client, message_id))[2] == 0


async def test_4_no_account_can_speak_in_someone_elses_name(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    mallory, bob, alice = cast.mallory, cast.bob, cast.alice
    bob_client = await accounts.client(bob)
    login = await accounts.login(mallory)
    before, on_screen = await cache_state(bob_client), shown(bob_client)

    with attacks.attempt(
        "4a",
        "mallory sends bob a DM as alice, with user_id alice",
        "broker: user_id must be the login",
        "406 PRECONDITION_FAILED",
    ):
        message = dm(alice, bob, "attack 4a: spoofed user_id")
        refused = await refusal(
            login, lambda ch: publish(ch, accounts, user_key(bob.user), message, alice.user)
        )
        assert_refused(
            refused,
            ChannelPreconditionFailed,
            f"PRECONDITION_FAILED - user_id property set to '{alice.user}' but "
            f"authenticated user was '{mallory.user}'",
        )

    rejected = 0
    for number, attack, sender, user_id in (
        ("4b", "mallory sends bob a DM as alice, with her own user_id", alice, mallory.user),
        ("4c", "mallory sends bob a DM as alice, with no user_id", alice, None),
        ("4d", "mallory sends bob a DM in bob's own name (to himself)", bob, mallory.user),
        ("4e", "mallory sends bob a DM in bob's own name, with no user_id", bob, None),
    ):
        with attacks.attempt(
            number,
            attack,
            "bob's client: user_id must be the sender_id",
            "dead-lettered; bob's cache and screen unchanged",
        ):
            text = f"attack {number}: forged sender"
            await forge(login, accounts, user_key(bob.user), dm(sender, bob, text), user_id)
            rejected += 1
            await eventually(
                lambda n=rejected: bob_client.inbox.counters.unverified == n, what="bob's verdict"
            )
            await eventually(
                lambda t=text, u=user_id: _one_dead_letter(accounts, t, user_key(bob.user), u),
                what="the dead letter",
            )
            assert await cache_state(bob_client) == before
            assert shown(bob_client) == on_screen
            assert bob_client.inbox.counters.rejected == rejected


async def _one_dead_letter(
    accounts: AccountsDeployment, content: str, key: str, user_id: str | None
) -> bool:
    found = await dead_lettered(accounts, content)
    assert len(found) <= 1, found
    return found == [(key, user_id)]


async def test_5_forged_receipts_do_not_count(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    mallory, bob, alice = cast.mallory, cast.bob, cast.alice
    alice_client = await accounts.client(alice)
    login = await accounts.login(mallory)
    waiting = await sent_dm(alice_client, bob, "attack 5: unread in bob's inbox")

    with attacks.attempt(
        "5a",
        "mallory marks alice's DM read for bob, with user_id bob",
        "broker: user_id must be the login",
        "406 PRECONDITION_FAILED",
    ):
        receipt = read_receipt(bob.user, waiting)
        refused = await refusal(
            login, lambda ch: publish(ch, accounts, receipt_key(alice.user), receipt, bob.user)
        )
        assert_refused(
            refused,
            ChannelPreconditionFailed,
            f"PRECONDITION_FAILED - user_id property set to '{bob.user}' but "
            f"authenticated user was '{mallory.user}'",
        )

    ignored = 0
    for number, attack, user_id in (
        ("5b", "mallory marks alice's DM read for bob, with her own user_id", mallory.user),
        ("5c", "mallory marks alice's DM read for bob, with no user_id", None),
    ):
        with attacks.attempt(
            number,
            attack,
            "alice's client: user_id must be the recipient_id",
            "ignored; alice's DM stays sent",
        ):
            await forge_read(login, accounts, alice, bob.user, waiting, user_id)
            ignored += 1
            await eventually(
                lambda n=ignored: alice_client.receipts.unverified == n, what="alice's verdict"
            )
            assert await status_of(alice_client, waiting) == ("sent", 0, 0)

    with attacks.attempt(
        "5d",
        "mallory marks alice's DM to bob read in her own name",
        "alice's cache: a receipt counts from its message's recipients only",
        "ignored; bob's real receipt then says delivered",
    ):
        await forge_read(login, accounts, alice, mallory.user, waiting, mallory.user)
        ignored += 1
        await eventually(
            lambda: alice_client.receipts.unverified == ignored, what="alice's verdict"
        )
        assert await status_of(alice_client, waiting) == ("sent", 0, 0)
        # Bob's own receipt comes after the forgeries in alice's receipts queue.
        bob_client = await accounts.client(bob)
        await eventually(lambda: "attack 5: unread in bob's inbox" in shown(bob_client), what="DM")
        await eventually(lambda: _status_is(alice_client, waiting, "delivered"), what="delivered")
        assert await status_of(alice_client, waiting) == ("delivered", 1, 0)

    carol_client = await accounts.client(cast.carol)
    group = await group_of(accounts, alice_client, bob_client, carol_client)
    await accounts.stop(carol_client)  # carol's copy waits in her inbox
    stored = await alice_client.send(Conversation.group(group), "attack 5: to bob and carol")
    in_group = stored.message_id
    await eventually(
        lambda: _status_of_is(alice_client, in_group, ("sent", 1, 0)), what="bob's receipt"
    )
    with attacks.attempt(
        "5e",
        "mallory marks alice's group message read for two users who do not exist",
        "alice's client: user_id must be the recipient_id",
        "ignored; not read 2/2",
    ):
        for fake in ("fake-one", "fake-two"):
            await forge_read(login, accounts, alice, fake, in_group, mallory.user)
        await eventually(lambda: alice_client.receipts.unverified == ignored + 2, what="verdicts")
        assert await status_of(alice_client, in_group) == ("sent", 1, 0)
    with attacks.attempt(
        "5f",
        "mallory marks alice's group message read in her own name, not a member",
        "alice's client: a group receipt counts from a member only",
        "ignored; not read 2/2",
    ):
        await forge_read(login, accounts, alice, mallory.user, in_group, mallory.user)
        await eventually(lambda: alice_client.receipts.unverified == ignored + 3, what="verdict")
        message = await alice_client.store.get_message(in_group)
        assert message is not None
        assert (message.status, message.recipient_count, message.read_count) == ("sent", 2, 0)


async def _status_of_is(client: ChatClient, message_id: str, wanted: tuple[str, int, int]) -> bool:
    return await status_of(client, message_id) == wanted


async def test_6_no_account_can_change_the_directory_for_someone_else(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    mallory, bob, alice = cast.mallory, cast.bob, cast.alice
    alice_client = await accounts.client(alice)
    bob_client = await accounts.client(bob)
    group = await group_of(accounts, alice_client, bob_client)
    login = await accounts.login(mallory)
    victims = (alice_client, bob_client)
    before = [await cache_state(client) for client in victims]
    skipped = [client.directory.unverified for client in victims]

    async def skipped_by_both(event: DirectoryEvent, key: str, user_id: str | None) -> None:
        await forge(login, accounts, key, event, user_id)
        for i, client in enumerate(victims):
            skipped[i] += 1
            await eventually(
                lambda c=client, n=skipped[i]: c.directory.unverified == n,
                what=f"{client.me}'s verdict",
            )
        assert [await cache_state(client) for client in victims] == before

    bob_leaves = DirectoryEvent(event="left", user_id=bob.user, group_id=group)
    for number, user_id in (("6a", mallory.user), ("6b", None)):
        with attacks.attempt(
            number,
            f"mallory makes bob leave a group ({'her own' if user_id else 'no'} user_id)",
            "every client: user_id must be the event's user_id",
            "skipped; bob still a member for alice and bob",
        ):
            await skipped_by_both(bob_leaves, directory_group_key(group), user_id)
            assert await is_member(alice_client, group, bob.user)

    fake = "fake-user"
    with attacks.attempt(
        "6c",
        "mallory registers a fake user under directory.user.fake-user",
        "broker: topic write permission (own directory key only)",
        "403 ACCESS_REFUSED",
    ):
        registered = DirectoryEvent(event="registered", user_id=fake)
        key = directory_user_key(fake)
        refused = await refusal(
            login, lambda ch: publish(ch, accounts, key, registered, mallory.user)
        )
        assert_refused(refused, ChannelAccessRefused, topic_refused(accounts, mallory, key))

    with attacks.attempt(
        "6d",
        "mallory registers a fake user under her own directory key",
        "every client: the routing key must agree with the body",
        "skipped; no fake user",
    ):
        await skipped_by_both(registered, directory_user_key(mallory.user), mallory.user)
        assert fake not in await alice_client.cache.users()

    with attacks.attempt(
        "6e",
        "mallory creates a group in alice's name",
        "every client: user_id must be the event's user_id",
        "skipped; no such group",
    ):
        taken = f"g{uuid.uuid4().hex[:8]}"
        created = DirectoryEvent(event="created", user_id=alice.user, group_id=taken)
        await skipped_by_both(created, directory_group_key(taken), mallory.user)
        assert taken not in await bob_client.cache.groups()


Attempt = Callable[[AbstractChannel], Awaitable[Any]]


async def test_7_no_account_can_purge_delete_or_rebind_someone_elses_inbox(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    names, mallory, bob = accounts.names, cast.mallory, cast.bob
    bob_client = await accounts.client(bob)
    group = await group_of(accounts, bob_client)
    await accounts.stop(bob_client)
    alice_client = await accounts.client(cast.alice)
    await sent_dm(alice_client, bob, "attack 7: waits for bob")
    login = await accounts.login(mallory)
    inbox, receipts = names.inbox_queue(bob.user), names.receipts_queue(bob.user)
    bound = await accounts.binding_keys(inbox)
    assert {user_key(bob.user), group_key(group)} <= bound
    never_joined = group_key(f"g{uuid.uuid4().hex[:8]}")
    exchange = names.messages_exchange

    attempts: list[tuple[str, str, str, str, Attempt]] = [
        (
            "7a",
            "mallory purges bob's inbox",
            "read permission",
            inbox,
            lambda ch: _purge(ch, inbox),
        ),
        (
            "7b",
            "mallory deletes bob's inbox",
            "configure ^$",
            inbox,
            lambda ch: ch.queue_delete(inbox),
        ),
        (
            "7c",
            "mallory deletes bob's receipts queue",
            "configure ^$",
            receipts,
            lambda ch: ch.queue_delete(receipts),
        ),
        (
            "7d",
            "mallory unbinds bob from his group",
            "write permission",
            inbox,
            lambda ch: _unbind(ch, inbox, exchange, group_key(group)),
        ),
        (
            "7e",
            "mallory binds bob to a group he never joined",
            "write permission",
            inbox,
            lambda ch: _bind(ch, inbox, exchange, never_joined),
        ),
    ]
    for number, attack, permission, queue, attempt in attempts:
        with attacks.attempt(number, attack, f"broker: vhost {permission}", "403 ACCESS_REFUSED"):
            refused = await refusal(login, attempt)
            assert_queue_refused(accounts, mallory, refused, queue)
            assert await accounts.binding_keys(inbox) == bound

    with attacks.attempt(
        "7",
        "(after 7a-7e) bob's queues and the DM that waited in his inbox",
        "they were never touched",
        "bob's client receives it; queues as provisioned",
    ):
        for queue in (inbox, receipts):
            assert (await accounts.queue(queue))["arguments"] == personal_queue_arguments(names)
        bob_client = await accounts.client(bob)
        await eventually(lambda: "attack 7: waits for bob" in shown(bob_client), what="bob's DM")


async def _purge(channel: AbstractChannel, queue: str) -> None:
    declared = await channel.get_queue(queue, ensure=False)
    await declared.purge()


async def test_8_no_account_can_delete_or_replace_the_shared_objects(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    names, mallory = accounts.names, cast.mallory
    login = await accounts.login(mallory)
    directory, messages, dead_letters = (
        names.directory_stream,
        names.messages_exchange,
        names.dead_letters_queue,
    )

    attempts: list[tuple[str, str, str, Attempt]] = [
        (
            "8a",
            "mallory deletes NS.messages",
            f"exchange '{messages}'",
            lambda ch: ch.exchange_delete(messages),
        ),
        (
            "8b",
            "mallory deletes NS.directory",
            f"queue '{directory}'",
            lambda ch: ch.queue_delete(directory),
        ),
        (
            "8c",
            "mallory declares a classic NS.directory",
            f"queue '{directory}'",
            lambda ch: ch.declare_queue(directory, durable=True),
        ),
        (
            "8d",
            "mallory deletes NS.dead-letters",
            f"queue '{dead_letters}'",
            lambda ch: ch.queue_delete(dead_letters),
        ),
    ]
    for number, attack, what, attempt in attempts:
        with attacks.attempt(number, attack, "broker: vhost configure ^$", "403 ACCESS_REFUSED"):
            refused = await refusal(login, attempt)
            assert_refused(refused, ChannelAccessRefused, access_refused(accounts, mallory, what))

    with attacks.attempt(
        "8",
        "(after 8a-8d) the shared objects and a DM through them",
        "they were never touched",
        "the directory is a stream; alice and bob chat",
    ):
        assert (await accounts.queue(directory))["type"] == "stream"
        alice_client = await accounts.client(cast.alice)
        bob_client = await accounts.client(cast.bob)
        await sent_dm(alice_client, cast.bob, "attack 8: still delivered")
        await eventually(lambda: "attack 8: still delivered" in shown(bob_client), what="DM")


async def test_9_no_account_can_predeclare_an_inbox_before_its_user_starts(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    names, mallory = accounts.names, cast.mallory
    login = await accounts.login(mallory)
    dave = accounts.admin.user_id("dave")  # not provisioned yet
    inbox = names.inbox_queue(dave)

    for number, arguments in (("9a", {}), ("9b", {"x-max-length": 1})):
        with attacks.attempt(
            number,
            f"mallory declares NS.inbox.dave with arguments {arguments}",
            "broker: vhost configure ^$",
            "403 ACCESS_REFUSED",
        ):
            refused = await refusal(login, _declare, inbox, arguments)
            assert_queue_refused(accounts, mallory, refused, inbox)

    with attacks.attempt(
        "9",
        "(after 9a-9b) admin add-user dave, and dave's first start",
        "no inbox of dave's existed before add-user",
        "dave comes online and registers",
    ):
        password = await _provision(accounts, dave)
        assert (await accounts.queue(inbox))["arguments"] == personal_queue_arguments(names)
        dave_client = await accounts.client(Account(dave, password))
        await eventually(lambda: knows(dave_client, dave), what="dave registered")


async def _declare(channel: AbstractChannel, queue: str, arguments: dict[str, Any]) -> None:
    await channel.declare_queue(queue, durable=True, arguments=arguments)


async def _provision(accounts: AccountsDeployment, user: str) -> str:
    return await asyncio.to_thread(accounts.admin.provision, user)
