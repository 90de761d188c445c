"""The archive's account on the managed node, each right proven with plain aio-pika:
what `chat-tui admin add-archive` grants lets the archive consume its two queues, read
the directory and answer a user on direct reply-to; every other attempt, the archive's
and a user's against the archive, is stopped by the broker (its exact refusal asserted)
or by the receivers (the verdict asserted). Then `admin check` finds the archive's
drift and `add-archive` repairs it. Each attempt is a row of the attack table."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed

from chat_tui.admin.api import ManagementApi
from chat_tui.admin.provision import Provisioner
from chat_tui.protocol.archive import HistoryPage, HistoryRequest, decode_answer, decode_request
from chat_tui.protocol.models import DirectoryEvent, SendMessage
from chat_tui.protocol.names import (
    ARCHIVE_REQUEST_KEY,
    directory_user_key,
    group_key,
    user_key,
)
from chat_tui.protocol.permissions import (
    TopicPermissions,
    VhostPermissions,
    archive_login,
    archive_permissions,
)
from chat_tui.protocol.queues import archive_queue_arguments, archive_requests_arguments
from tests.accounts import test_admin
from tests.accounts.attack_table import AttackLog
from tests.accounts.provisioning import Account, AccountsDeployment, Admin, shown
from tests.accounts.test_admin import failed
from tests.accounts.test_attacks import (
    access_refused,
    assert_queue_refused,
    assert_refused,
    dead_lettered,
    dm,
    forge,
    publish,
    refusal,
    topic_refused,
)
from tests.conftest import eventually

admin = test_admin.admin
"""The admin tests' own fixture: an `Admin` on a fresh vhost, its accounts deleted after."""

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
WAIT = 10.0


@dataclass(frozen=True)
class Cast:
    archive: Account
    alice: Account
    bob: Account


def archive_account(admin: Admin, lines: list[str]) -> Account:
    """The archive's account from what `add-archive` printed once."""
    login = archive_login(admin.names)
    admin.accounts.add(login)  # accounts belong to the node: deleted after the module
    (line,) = [line for line in lines if line.startswith(f"password of {login} (shown once): ")]
    return Account(login, line.rsplit(" ", 1)[1])


@pytest.fixture(scope="module")
def provisioned_cast(provisioned: AccountsDeployment) -> Cast:
    archive = archive_account(provisioned.admin, provisioned.admin.ok("add-archive"))
    return Cast(archive, provisioned.add_user("alice"), provisioned.add_user("bob"))


@pytest.fixture
async def cast(accounts: AccountsDeployment, provisioned_cast: Cast) -> Cast:
    return provisioned_cast


async def next_message(
    channel: AbstractChannel, queue_name: str, **consume: object
) -> AbstractIncomingMessage:
    """The first message a consumer of `queue_name` gets (acked), on `channel`."""
    queue = await channel.get_queue(queue_name, ensure=True)  # passive: no configure right
    arrived: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()

    async def on_message(message: AbstractIncomingMessage) -> None:
        if not arrived.done():
            arrived.set_result(message)

    await channel.set_qos(prefetch_count=1)
    tag = await queue.consume(on_message, **consume)  # type: ignore[arg-type]
    try:
        message = await asyncio.wait_for(arrived, WAIT)
    finally:
        await queue.cancel(tag)
    if not consume.get("no_ack"):
        await message.ack()
    return message


async def through_the_default_exchange(
    channel: AbstractChannel, routing_key: str, body: bytes, user_id: str
) -> None:
    """Publish to the default exchange, which routes to the queue named `routing_key`."""
    await channel.default_exchange.publish(
        aio_pika.Message(body, user_id=user_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=routing_key,
    )


async def ask(
    channel: AbstractChannel,
    accounts: AccountsDeployment,
    routing_key: str,
    request: HistoryRequest,
    user_id: str,
) -> None:
    """A history request as the client sends it: answer on direct reply-to, please."""
    exchange = await channel.get_exchange(accounts.names.messages_exchange, ensure=False)
    await exchange.publish(
        aio_pika.Message(
            request.to_body(), user_id=user_id, reply_to=DIRECT_REPLY_TO, correlation_id="q-1"
        ),
        routing_key=routing_key,
    )


async def ask_awaiting(
    channel: AbstractChannel,
    accounts: AccountsDeployment,
    routing_key: str,
    request: HistoryRequest,
    user_id: str,
) -> None:
    """`ask`, consuming direct reply-to first as a requester must (without a consumer
    the broker refuses the publish: 'fast reply consumer does not exist')."""
    reply_to = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
    await reply_to.consume(on_answer, no_ack=True)
    await ask(channel, accounts, routing_key, request, user_id)


async def on_answer(message: AbstractIncomingMessage) -> None:
    """No archive runs in these tests: nothing comes."""


async def consume(channel: AbstractChannel, queue_name: str) -> None:
    queue = await channel.get_queue(queue_name, ensure=False)
    await queue.consume(on_answer)


# --- what the archive may do -----------------------------------------------------------


async def test_the_archive_consumes_every_chat_message_from_its_intake_queue(
    accounts: AccountsDeployment, cast: Cast
) -> None:
    names = accounts.names
    alice = await accounts.login(cast.alice)
    archive = await (await accounts.login(cast.archive)).channel()
    group_message = SendMessage(
        message_id=uuid.uuid4(), sender_id=cast.alice.user, group_id="lobby", content="hi all"
    )
    await forge(alice, accounts, group_key("lobby"), group_message, cast.alice.user)
    stored = await next_message(archive, names.archive_queue)
    assert (stored.routing_key, stored.user_id) == (group_key("lobby"), cast.alice.user)
    assert stored.body == group_message.to_body()

    direct = dm(cast.alice, cast.bob, "hi bob")
    await forge(alice, accounts, user_key(cast.bob.user), direct, cast.alice.user)
    stored = await next_message(archive, names.archive_queue)
    assert (stored.routing_key, stored.body) == (user_key(cast.bob.user), direct.to_body())


async def test_a_user_asks_the_archive_and_gets_its_answer_on_direct_reply_to(
    accounts: AccountsDeployment, cast: Cast
) -> None:
    names = accounts.names
    alice = await (await accounts.login(cast.alice)).channel()
    answers: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    reply_to = await alice.get_queue(DIRECT_REPLY_TO, ensure=False)
    await reply_to.consume(answers.put, no_ack=True)
    request = HistoryRequest(requester_id=cast.alice.user, group_id="lobby")
    await ask(alice, accounts, ARCHIVE_REQUEST_KEY, request, cast.alice.user)

    archive = await (await accounts.login(cast.archive)).channel()
    asked = await next_message(archive, names.archive_requests_queue)
    assert decode_request(asked.body) == request
    assert asked.user_id == cast.alice.user  # the requester, as the broker validated it
    assert asked.reply_to is not None and asked.reply_to.startswith(f"{DIRECT_REPLY_TO}.")
    page = HistoryPage(messages=())
    await archive.default_exchange.publish(
        aio_pika.Message(
            page.to_body(), correlation_id=asked.correlation_id, user_id=cast.archive.user
        ),
        routing_key=asked.reply_to,
    )
    answer = await asyncio.wait_for(answers.get(), WAIT)
    assert (answer.correlation_id, answer.user_id) == ("q-1", cast.archive.user)
    assert decode_answer(answer.body) == page


async def test_the_archive_follows_the_directory_stream(
    accounts: AccountsDeployment, cast: Cast
) -> None:
    registered = DirectoryEvent(event="registered", user_id=cast.alice.user, display_name="Alice")
    alice = await accounts.login(cast.alice)
    await forge(alice, accounts, directory_user_key(cast.alice.user), registered, cast.alice.user)
    archive = await (await accounts.login(cast.archive)).channel()
    entry = await next_message(
        archive, accounts.names.directory_stream, arguments={"x-stream-offset": "first"}
    )
    assert entry.body == registered.to_body()
    assert (entry.routing_key, entry.user_id) == (
        directory_user_key(cast.alice.user),
        cast.alice.user,
    )


# --- what the archive may not do -------------------------------------------------------


async def test_the_archive_can_neither_speak_in_the_chat_nor_read_inboxes_nor_configure(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    names, archive = accounts.names, cast.archive
    login = await accounts.login(archive)
    exchange_refused = access_refused(accounts, archive, f"exchange '{names.messages_exchange}'")
    spoken = dm(cast.alice, cast.bob, "the archive speaking")
    event = DirectoryEvent(event="registered", user_id=cast.alice.user, display_name="Alice")

    with attacks.attempt(
        "A1", "the archive publishes a DM on NS.messages", "vhost write", "ACCESS_REFUSED"
    ):
        refused = await refusal(
            login, publish, accounts, user_key(cast.bob.user), spoken, archive.user
        )
        assert_refused(refused, ChannelAccessRefused, exchange_refused)
    with attacks.attempt(
        "A2", "the archive publishes a directory event", "vhost write", "ACCESS_REFUSED"
    ):
        refused = await refusal(
            login, publish, accounts, directory_user_key(cast.alice.user), event, archive.user
        )
        assert_refused(refused, ChannelAccessRefused, exchange_refused)
    for queue in (
        names.inbox_queue(cast.bob.user),
        names.receipts_queue(cast.bob.user),
        names.dead_letters_queue,
    ):
        with attacks.attempt("A3", f"the archive consumes {queue}", "vhost read", "ACCESS_REFUSED"):
            assert_queue_refused(accounts, archive, await refusal(login, consume, queue), queue)
    spy = f"{names.namespace}.archive-spy"
    with attacks.attempt(
        "A4", "the archive declares a queue of its own", "vhost configure", "ACCESS_REFUSED"
    ):
        declared = await refusal(login, lambda channel: channel.declare_queue(spy, durable=True))
        assert_queue_refused(accounts, archive, declared, spy)
    with attacks.attempt(
        "A5", "the archive deletes NS.archive", "vhost configure", "ACCESS_REFUSED"
    ):
        deleted = await refusal(login, lambda channel: channel.queue_delete(names.archive_queue))
        assert_queue_refused(accounts, archive, deleted, names.archive_queue)
    with attacks.attempt(
        "A6",
        "the archive binds NS.archive to every receipt",
        "vhost write on the queue",
        "ACCESS_REFUSED",
    ):

        async def bind(channel: AbstractChannel) -> None:
            queue = await channel.get_queue(names.archive_queue, ensure=False)
            await queue.bind(names.messages_exchange, "receipt.#")

        assert_queue_refused(accounts, archive, await refusal(login, bind), names.archive_queue)
    assert await accounts.binding_keys(names.archive_queue) == {"group.#", "user.#"}


async def test_what_the_archive_puts_in_an_inbox_through_the_default_exchange_is_refused(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    """The default exchange routes to any queue by name, so the archive's right to it
    reaches inboxes and the directory too: the receivers stop what arrives that way,
    by its routing key (the queue's name) and by its publisher (no chat user)."""
    names = accounts.names
    bob = await accounts.client(cast.bob)
    channel = await (await accounts.login(cast.archive)).channel()
    forged = dm(cast.alice, cast.bob, "forged by the archive")
    inbox = names.inbox_queue(cast.bob.user)
    with attacks.attempt(
        "A7",
        "the archive puts a DM 'from alice' straight into bob's inbox",
        "receiver: routing key and sender check",
        "dead-lettered",
    ):
        await through_the_default_exchange(channel, inbox, forged.to_body(), cast.archive.user)
        await eventually(
            lambda: dead_lettered_now(accounts, forged.content, inbox, cast.archive.user),
            what="the forged DM in NS.dead-letters",
        )
        assert forged.content not in " ".join(shown(bob))
    joined = DirectoryEvent(event="registered", user_id=cast.alice.user, display_name="Mallory")
    with attacks.attempt(
        "A8",
        "the archive renames alice in the directory through the default exchange",
        "reader: routing key and sender check",
        "skipped",
    ):
        await through_the_default_exchange(
            channel, names.directory_stream, joined.to_body(), cast.archive.user
        )
        users = await asyncio.to_thread(accounts.admin.ok, "users")
        assert "directory: 1 entries skipped as invalid" in users


async def dead_lettered_now(
    accounts: AccountsDeployment, content: str, routing_key: str, user_id: str
) -> bool:
    return await dead_lettered(accounts, content) == [(routing_key, user_id)]


# --- what a user may not do to the archive ---------------------------------------------


async def test_a_user_can_neither_answer_for_the_archive_nor_read_its_queues(
    accounts: AccountsDeployment, cast: Cast, attacks: AttackLog
) -> None:
    names, alice = accounts.names, cast.alice
    login = await accounts.login(alice)
    page = HistoryPage(messages=(dm(cast.bob, alice, "a forged history"),))
    with attacks.attempt(
        "A9",
        "alice publishes to the default exchange (a forged archive answer)",
        "vhost write",
        "ACCESS_REFUSED",
    ):
        refused = await refusal(
            login,
            through_the_default_exchange,
            names.inbox_queue(cast.bob.user),
            page.to_body(),
            alice.user,
        )
        assert_refused(
            refused, ChannelAccessRefused, access_refused(accounts, alice, "exchange 'amq.default'")
        )
    for queue in (names.archive_queue, names.archive_requests_queue):
        with attacks.attempt("A10", f"alice consumes {queue}", "vhost read", "ACCESS_REFUSED"):
            assert_queue_refused(accounts, alice, await refusal(login, consume, queue), queue)
    request = HistoryRequest(requester_id=cast.bob.user, peer_id=alice.user)
    with attacks.attempt(
        "A11", "alice asks the archive in bob's name", "the broker's user_id check", "refused"
    ):
        refused = await refusal(
            login, ask_awaiting, accounts, ARCHIVE_REQUEST_KEY, request, cast.bob.user
        )
        assert_refused(
            refused,
            ChannelPreconditionFailed,
            f"PRECONDITION_FAILED - user_id property set to '{cast.bob.user}' but "
            f"authenticated user was '{alice.user}'",
        )
    with attacks.attempt(
        "A12", "alice publishes under another archive.* key", "topic write", "ACCESS_REFUSED"
    ):
        refused = await refusal(
            login, ask_awaiting, accounts, "archive.requests", request, alice.user
        )
        assert_refused(
            refused, ChannelAccessRefused, topic_refused(accounts, alice, "archive.requests")
        )
    with attacks.attempt(
        "A13", "alice binds her inbox to archive.request", "topic read", "ACCESS_REFUSED"
    ):

        async def bind(channel: AbstractChannel) -> None:
            inbox = await channel.get_queue(names.inbox_queue(alice.user), ensure=False)
            await inbox.bind(names.messages_exchange, ARCHIVE_REQUEST_KEY)

        assert_refused(
            await refusal(login, bind),
            ChannelAccessRefused,
            topic_refused(accounts, alice, ARCHIVE_REQUEST_KEY),
        )


# --- chat-tui admin and the archive's account ------------------------------------------


def test_add_archive_needs_init_and_then_grants_exactly_the_archives_rights(admin: Admin) -> None:
    login = archive_login(admin.names)
    assert failed(admin.run("add-archive")) == (
        f"chat-tui: error: the exchange {admin.names.messages_exchange} does not exist: "
        "run 'chat-tui admin init' first"
    )
    admin.ok("init")
    first = admin.run("add-archive", "--password-stdin", stdin="archive-secret\n")
    admin.accounts.add(login)
    assert first.returncode == 0, first.stderr
    assert "archive-secret" not in first.stdout
    assert first.stdout.splitlines() == [
        f"account {login}: created",
        f"permissions of {login} on vhost {admin.vhost}: set",
        f"topic permissions of {login}: set",
    ]
    wanted = archive_permissions(admin.names)
    (rights,) = admin.api_get(f"api/users/{login}/permissions")
    assert VhostPermissions(rights["configure"], rights["write"], rights["read"]) == wanted.vhost
    (topic,) = admin.api_get(f"api/users/{login}/topic-permissions")
    assert TopicPermissions(topic["exchange"], topic["write"], topic["read"]) == wanted.topic
    assert admin.api_get(f"api/users/{login}")["tags"] in ([], "")
    again = admin.ok("add-archive")
    assert again[0].startswith(f"account {login}: already there (password unchanged")
    assert all(line.endswith(": already there") for line in again[1:])


def test_admin_users_shows_the_archive_as_the_archive(admin: Admin) -> None:
    admin.ok("init")
    archive_account(admin, admin.ok("add-archive"))
    login = archive_login(admin.names)
    (line,) = [line for line in admin.ok("users") if line.startswith(f"{login} ")]
    assert line.split() == [
        login,
        "directory:",
        "-",
        "account:",
        "the",
        "archive,",
        "not",
        "a",
        "chat",
        "user",
    ]


async def test_passwd_gives_the_archive_a_new_password(admin: Admin) -> None:
    admin.ok("init")
    old = archive_account(admin, admin.ok("add-archive"))
    assert admin.ok("passwd", old.user, "--password-stdin", stdin="new-archive-secret\n") == [
        f"password of {old.user}: updated",
        f"connections of {old.user}: none open",
    ]
    connection = await aio_pika.connect(
        admin.node.amqp_url(old.user, "new-archive-secret", admin.vhost)
    )
    await connection.close()


def test_check_finds_the_archives_drift_and_add_archive_repairs_it(admin: Admin) -> None:
    names, v = admin.names, admin.v
    admin.ok("init")
    assert admin.ok("check")[1] == (
        f"warning: {archive_login(names)}: no archive account: messages collect in "
        f"{names.archive_queue} until an archive runs; 'chat-tui admin add-archive' creates "
        "its account"
    )
    archive = archive_account(admin, admin.ok("add-archive"))
    clean = admin.ok("check")
    assert not any(archive.user in line for line in clean[:-1]), clean
    assert clean[-1].endswith("0 problems, 1 warning")

    wanted = archive_permissions(names).vhost
    widened = rf"^{names.namespace}\.(archive|archive\.requests|directory|inbox\..*)$"
    admin.api_put(
        f"api/permissions/{v}/{archive.user}",
        {"configure": ".*", "write": wanted.write, "read": widened},
    )
    with admin.node.http() as api:
        api.delete(f"api/topic-permissions/{v}/{archive.user}").raise_for_status()
        api.delete(f"api/queues/{v}/{names.archive_requests_queue}").raise_for_status()
    admin.api_put(f"api/users/{archive.user}", {"password": archive.password, "tags": "management"})

    result = admin.run("check")
    assert (result.returncode, result.stderr) == (1, "")
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith(f"{archive.user}:")] == [
        f"{archive.user}: has the tags management: the archive's account has none",
        f"{archive.user}: has no {names.archive_requests_queue}: run 'chat-tui admin init'",
        f"{archive.user}: rights differ: configure is '.*', not '^$'",
        f"{archive.user}: rights differ: read is {widened!r}, not {wanted.read!r}",
        f"{archive.user}: has no topic permissions: 'chat-tui admin add-archive' sets them",
    ]
    assert lines[-1].endswith("5 problems, 1 warning")

    admin.ok("init")
    assert failed(admin.run("add-archive")) == (
        f"chat-tui: error: {archive.user} is an existing account with the tags management: "
        "the archive's account has none; remove the tags or the account, then run this again"
    )
    admin.api_put(f"api/users/{archive.user}", {"password": archive.password, "tags": ""})
    assert admin.ok("add-archive")[1:] == [
        f"permissions of {archive.user} on vhost {admin.vhost}: updated",
        f"topic permissions of {archive.user}: set",
    ]
    assert admin.ok("check")[-1].endswith("0 problems, 1 warning")


async def test_a_quorum_init_declares_the_archives_queues_as_quorum_queues(admin: Admin) -> None:
    names = admin.names
    async with ManagementApi(admin.node.admin_url, admin.vhost) as api:
        await Provisioner(api, names, lambda line: None, "quorum").init()
    for queue, arguments in (
        (names.archive_queue, archive_queue_arguments(names, "quorum")),
        (names.archive_requests_queue, archive_requests_arguments("quorum")),
    ):
        found = admin.api_get(f"api/queues/{admin.v}/{queue}")
        assert (found["type"], found["durable"], found["arguments"]) == (
            "quorum",
            True,
            arguments,
        )
