"""`chat-tui admin` against a private node with the management plugin, run as the real
command: provisioning is idempotent, the accounts it makes log in with exactly the
protocol's rights, `check` finds drift, and a refusal is one clear line."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import ProbableAuthenticationError
from aiormq.exceptions import ChannelAccessRefused

from chat_tui.admin.deployments import namespace_of_rights
from chat_tui.config import CONFIG_FILE_ENV
from chat_tui.protocol.names import Names, receipt_key, user_key
from chat_tui.protocol.permissions import VhostPermissions, chat_user_permissions
from chat_tui.protocol.queues import DEAD_LETTERS_MAX_LENGTH, personal_queue_arguments
from tests.accounts.node import ManagedNode
from tests.accounts.provisioning import AccountsDeployment, Admin
from tests.conftest import eventually


def failed(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a refused command."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("chat-tui: error: ")
    return line


@pytest.fixture
def admin(managed_node: ManagedNode, vhost: str, tmp_path: Path) -> Iterator[Admin]:
    chat_admin = Admin(managed_node, vhost, tmp_path)
    yield chat_admin
    for name in chat_admin.accounts:
        managed_node.delete_user(name)


def closed_by_broker(connection: AbstractConnection) -> bool:
    """aio-pika marks a connection closed only when closed from our side; aiormq's
    underneath sees the broker's Connection.Close."""
    underlay = connection.transport
    return underlay is None or underlay.connection.is_closed


async def in_thread(admin: Admin, *args: str, stdin: str | None = None) -> list[str]:
    return await asyncio.to_thread(admin.ok, *args, stdin=stdin)


def test_init_declares_the_shared_topology_and_is_idempotent(admin: Admin) -> None:
    ns = admin.names.namespace
    first = admin.ok("init")
    assert first[:6] == [
        f"exchange {ns}.messages (topic): created",
        f"exchange {ns}.dead (fanout): created",
        f"queue {ns}.dead-letters: created",
        f"queue {ns}.directory: created",
        f"binding {ns}.dead -> {ns}.dead-letters (-): created",
        f"binding {ns}.messages -> {ns}.directory (directory.#): created",
    ]
    assert first[6:11] == [
        f"queue {ns}.archive: created",
        f"queue {ns}.archive.requests: created",
        f"binding {ns}.messages -> {ns}.archive (group.#): created",
        f"binding {ns}.messages -> {ns}.archive (user.#): created",
        f"binding {ns}.messages -> {ns}.archive.requests (archive.request): created",
    ]
    assert first[11].startswith("warning: the guest account exists")
    again = admin.ok("init")
    assert [line.rsplit(": ", 1)[1] for line in again[:11]] == ["already there"] * 11
    dead_letters = admin.api_get(f"api/queues/{admin.v}/{ns}.dead-letters")
    assert isinstance(dead_letters, dict)
    assert dead_letters["arguments"] == {"x-max-length": DEAD_LETTERS_MAX_LENGTH}
    assert dead_letters["durable"] is True
    directory = admin.api_get(f"api/queues/{admin.v}/{ns}.directory")
    assert isinstance(directory, dict)
    assert directory["type"] == "stream"


async def test_add_user_gives_a_login_with_its_queues_and_exactly_its_rights(
    admin: Admin,
) -> None:
    await in_thread(admin, "init")
    name, password = await asyncio.to_thread(admin.add_user, "alice")
    names = admin.names
    for queue in (names.inbox_queue(name), names.receipts_queue(name)):
        found = admin.api_get(f"api/queues/{admin.v}/{queue}")
        assert isinstance(found, dict)
        assert found["arguments"] == personal_queue_arguments(names)
        assert found["durable"] is True
    for queue, key in (
        (names.inbox_queue(name), user_key(name)),
        (names.receipts_queue(name), receipt_key(name)),
    ):
        bindings = admin.api_get(f"api/bindings/{admin.v}/e/{names.messages_exchange}/q/{queue}")
        assert isinstance(bindings, list)
        assert [b["routing_key"] for b in bindings] == [key]
    wanted = chat_user_permissions(names, name)
    permissions = admin.api_get(f"api/permissions/{admin.v}/{name}")
    assert isinstance(permissions, dict)
    assert (permissions["configure"], permissions["write"], permissions["read"]) == (
        wanted.vhost.configure,
        wanted.vhost.write,
        wanted.vhost.read,
    )
    (topic,) = admin.api_get(f"api/topic-permissions/{admin.v}/{name}")
    assert (topic["exchange"], topic["write"], topic["read"]) == (
        wanted.topic.exchange,
        wanted.topic.write,
        wanted.topic.read,
    )

    connection = await aio_pika.connect(admin.node.amqp_url(name, password, admin.vhost))
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(names.messages_exchange)
        inbox = await channel.get_queue(names.inbox_queue(name))
        await exchange.publish(aio_pika.Message(b"note to self"), routing_key=user_key(name))
        delivered = await inbox.get(timeout=5)
        assert delivered is not None and delivered.body == b"note to self"
        await delivered.ack()
        with pytest.raises(ChannelAccessRefused):
            await channel.declare_queue(f"{names.namespace}.mine")

    again = await in_thread(admin, "add-user", name)
    assert again[0].startswith(f"account {name}: already there (password unchanged")
    assert all(line.endswith(": already there") for line in again[1:])
    assert not any("shown once" in line for line in again)


async def test_add_user_takes_a_password_from_stdin_and_never_prints_it(admin: Admin) -> None:
    await in_thread(admin, "init")
    name = admin.user_id("bob")
    lines = await in_thread(admin, "add-user", name, "--password-stdin", stdin="s3cret-bob\n")
    assert lines[0] == f"account {name}: created"
    assert not any("s3cret-bob" in line for line in lines)
    connection = await aio_pika.connect(admin.node.amqp_url(name, "s3cret-bob", admin.vhost))
    await connection.close()


def test_add_user_refuses_a_bad_name_an_empty_password_and_a_missing_init(admin: Admin) -> None:
    assert "run 'chat-tui admin init' first" in failed(admin.run("add-user", admin.user_id("c")))
    admin.ok("init")
    assert "invalid user ID 'Carol.*'" in failed(admin.run("add-user", "Carol.*"))
    empty = failed(admin.run("add-user", admin.user_id("c"), "--password-stdin", stdin="\n"))
    assert "no password on standard input" in empty
    users = admin.api_get("api/users")
    assert isinstance(users, list)
    assert not {user["name"] for user in users} & admin.accounts


async def test_passwd_replaces_the_password_and_closes_the_old_logins(admin: Admin) -> None:
    await in_thread(admin, "init")
    name, old = await asyncio.to_thread(admin.add_user, "dave")
    leaked = await aio_pika.connect(admin.node.amqp_url(name, old, admin.vhost))
    lines = await in_thread(admin, "passwd", name)
    assert lines[0] == f"password of {name}: updated"
    new = lines[1].rsplit(" ", 1)[1]
    assert lines[1] == f"new password of {name} (shown once): {new}"
    # RabbitMQ keeps a connection opened with the old password unless it is closed.
    assert lines[2] == f"connections of {name}: 1 closed"
    await eventually(lambda: closed_by_broker(leaked), what="the old login's connection to close")
    with pytest.raises(ProbableAuthenticationError):
        await aio_pika.connect(admin.node.amqp_url(name, old, admin.vhost))
    connection = await aio_pika.connect(admin.node.amqp_url(name, new, admin.vhost))
    await connection.close()
    unknown = await asyncio.to_thread(admin.run, "passwd", "nobody-here")
    assert "there is no account nobody-here: 'chat-tui admin add-user nobody-here'" in failed(
        unknown
    )


async def test_remove_user_deletes_the_account_and_its_queues(admin: Admin) -> None:
    await in_thread(admin, "init")
    name, password = await asyncio.to_thread(admin.add_user, "erin")
    names = admin.names
    still_open = await aio_pika.connect(admin.node.amqp_url(name, password, admin.vhost))
    account, connections, inbox, receipts = await in_thread(admin, "remove-user", name)
    assert (account, inbox, receipts) == (
        f"account {name}: deleted",
        f"queue {names.inbox_queue(name)}: deleted",
        f"queue {names.receipts_queue(name)}: deleted",
    )
    # RabbitMQ closes a deleted account's connections itself, sometimes before
    # remove-user looks and sometimes while it closes them too.
    assert connections in (f"connections of {name}: none open", f"connections of {name}: 1 closed")
    await eventually(lambda: closed_by_broker(still_open), what="the removed account's connection")
    with pytest.raises(ProbableAuthenticationError):
        await aio_pika.connect(admin.node.amqp_url(name, password, admin.vhost))
    queues = admin.api_get(f"api/queues/{admin.v}")
    assert isinstance(queues, list)
    assert {q["name"] for q in queues} == {
        names.dead_letters_queue,
        names.directory_stream,
        names.archive_queue,
        names.archive_requests_queue,
    }
    again = await in_thread(admin, "remove-user", name)
    assert [line.rsplit(": ", 1)[1] for line in again] == [
        "not there",
        "none open",
        "not there",
        "not there",
    ]


def test_users_lists_the_accounts_beside_the_chat_users(admin: Admin) -> None:
    admin.ok("init")
    name, _ = admin.add_user("frank")
    listed = {line.split()[0]: line for line in admin.ok("users")}
    assert listed[name].endswith("chat user (inbox and receipts)")
    assert listed["admin"].endswith("no chat queues  [administrator]")
    assert "guest" in listed


def test_check_is_clean_after_add_user(admin: Admin) -> None:
    admin.ok("init")
    admin.add_user("gina")
    admin.add_user("hank")
    lines = admin.ok("check")
    assert lines[0].startswith("warning: guest: the guest account exists; whether it may log")
    assert lines[1].startswith(f"warning: {admin.names.namespace}.archive: no archive account:")
    assert lines[-1].endswith("0 problems, 2 warnings")
    assert len(lines) == 3


def test_check_finds_drift_and_add_user_repairs_it(admin: Admin) -> None:
    admin.ok("init")
    wide, _ = admin.add_user("ivan")
    untopical, _ = admin.add_user("judy")
    promoted, promoted_password = admin.add_user("kim")
    stray = admin.user_id("mallory")
    v = admin.v
    admin.api_put(f"api/permissions/{v}/{wide}", {"configure": ".*", "write": ".*", "read": ".*"})
    with admin.node.http() as api:
        api.delete(f"api/topic-permissions/{v}/{untopical}").raise_for_status()
    admin.api_put(
        f"api/users/{promoted}",
        {"password": promoted_password, "tags": "administrator,impersonator"},
    )
    admin.api_put(f"api/users/{stray}", {"password": "x", "tags": ""})
    admin.api_put(f"api/permissions/{v}/{stray}", {"configure": "", "write": "", "read": ".*"})

    result = admin.run("check")
    assert result.returncode == 1
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert f"{wide}: rights differ: configure is '.*', not '^$'" in lines
    assert any(line.startswith(f"{wide}: rights differ: write is '.*'") for line in lines)
    assert any(line.startswith(f"{wide}: rights differ: read is '.*'") for line in lines)
    assert (
        f"{untopical}: has no topic permissions: it may bind any key and read anyone's DMs" in lines
    )
    assert f"{promoted}: has the impersonator tag: it can publish as anyone" in lines
    assert f"{promoted}: has the administrator tag: it can change any account and queue" in lines
    assert any(
        line.startswith(f"{stray}: has rights on vhost {admin.vhost} but no chat queues")
        for line in lines
    )
    assert lines[-1].endswith("7 problems, 2 warnings")

    assert (
        admin.ok("add-user", wide)[-2] == f"permissions of {wide} on vhost {admin.vhost}: updated"
    )
    assert admin.ok("add-user", untopical)[-1] == f"topic permissions of {untopical}: set"
    still = admin.run("check").stdout.splitlines()
    assert not any(line.startswith((f"{wide}:", f"{untopical}:")) for line in still)
    assert still[-1].endswith("3 problems, 2 warnings")


def test_a_wrong_admin_password_is_one_clear_line_without_the_password(admin: Admin) -> None:
    wrong = admin.node.admin_url.replace(admin.node.admin_password, "not-the-password")
    line = failed(admin.run("init", admin_url=wrong))
    assert "refused the login of 'admin': check the user and password of the admin URL" in line
    assert "not-the-password" not in line
    queues = admin.api_get(f"api/queues/{admin.v}")
    assert queues == []


def test_an_unreachable_management_port_and_a_missing_vhost_are_clear_errors(
    admin: Admin, managed_node: ManagedNode
) -> None:
    closed = f"http://admin:{managed_node.admin_password}@127.0.0.1:1/"
    line = failed(admin.run("check", admin_url=closed))
    assert "the management API at http://admin:***@127.0.0.1:1/ is unreachable" in line
    assert managed_node.admin_password not in line
    admin.vhost = "no-such-vhost"
    missing = failed(admin.run("users"))
    assert "the vhost 'no-such-vhost' (from amqp_url) does not exist on the broker" in missing


def test_a_url_without_credentials_is_refused_before_any_request(admin: Admin) -> None:
    line = failed(admin.run("check", admin_url="http://127.0.0.1:15672/"))
    assert "is not http(s)://USER:PASSWORD@HOST:PORT/" in line


def _rights(admin: Admin, user: str) -> object:
    """An account's vhost and topic permissions, as the management API shows them."""
    vhost = admin.api_get(f"api/permissions/{admin.v}/{user}")
    topic = admin.api_get(f"api/vhosts/{admin.v}/topic-permissions")
    assert isinstance(topic, list)
    return vhost, [entry for entry in topic if entry["user"] == user]


def test_add_user_refuses_the_admin_login_and_an_account_with_tags(admin: Admin) -> None:
    admin.ok("init")
    own_rights = _rights(admin, "admin")
    line = failed(admin.run("add-user", "admin"))
    assert "admin is the login of the admin URL: chat users need accounts of their own" in line
    assert "admin is the login of the admin URL" in failed(admin.run("remove-user", "admin"))
    assert _rights(admin, "admin") == own_rights

    watcher = admin.user_id("watcher")
    admin.api_put(f"api/users/{watcher}", {"password": "x", "tags": "monitoring"})
    admin.api_put(
        f"api/permissions/{admin.v}/{watcher}", {"configure": "", "write": "", "read": ".*"}
    )
    watcher_rights = _rights(admin, watcher)
    assert failed(admin.run("add-user", watcher)).endswith(
        f"{watcher} is an existing account with the tags monitoring: chat users have none, "
        f"and add-user would replace its rights on the vhost {admin.vhost}; "
        "choose another user ID"
    )
    assert _rights(admin, watcher) == watcher_rights


def test_two_namespaces_on_one_vhost_cannot_take_each_others_users(
    admin: Admin, managed_node: ManagedNode, tmp_path: Path
) -> None:
    admin.ok("init")
    alice, _ = admin.add_user("alice")
    alice_rights = _rights(admin, alice)
    ns = admin.names.namespace
    # A namespace nested in the first one's names: its exchange NS.inbox.messages is also
    # the name of the inbox the first namespace would give a user called "messages".
    other = Admin(managed_node, admin.vhost, tmp_path)
    other.names = Names(f"{admin.names.namespace}.inbox")
    warned = [line for line in other.ok("init") if line.startswith("warning: the vhost")]
    assert warned == [
        f"warning: the vhost {admin.vhost} also holds the namespace {admin.names.namespace}: "
        "accounts belong to the whole broker and each has one entry of rights per vhost, so "
        "two namespaces on one vhost take each other's users' rights away; give each "
        "deployment a vhost of its own"
    ]
    refusal = (
        f"{alice} already has rights on vhost {admin.vhost} for another deployment "
        f"(namespace {ns}; topic permissions on {ns}.messages); one vhost holds one "
        "accounts deployment: give this namespace a vhost of its own"
    )
    assert failed(other.run("add-user", alice)).endswith(refusal)
    assert failed(other.run("remove-user", alice)).endswith(refusal)
    assert _rights(admin, alice) == alice_rights
    assert admin.ok("add-user", alice)[0].startswith(f"account {alice}: already there")


def test_a_chat_users_rights_name_their_namespace_and_nothing_else_does() -> None:
    for namespace in ("chat", "team-a.chat", "chat.inbox"):
        rights = chat_user_permissions(Names(namespace), "alice").vhost
        assert namespace_of_rights("alice", rights) == namespace
    assert namespace_of_rights("alice", VhostPermissions(".*", ".*", ".*")) is None
    assert namespace_of_rights("bob", chat_user_permissions(Names("chat"), "alice").vhost) is None
    widened = chat_user_permissions(Names("chat"), "alice").vhost
    assert namespace_of_rights("alice", VhostPermissions(".*", widened.write, ".*")) is None


async def test_users_shows_who_registered_in_the_directory_beside_the_accounts(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keep a developer's own config.toml out: accounts mode checks who can read it.
    monkeypatch.setenv(CONFIG_FILE_ENV, str(admin.data_dir / "no-config.toml"))
    await in_thread(admin, "init")
    deployment = AccountsDeployment(admin)
    started = await asyncio.to_thread(deployment.add_user, "lena")
    idle = await asyncio.to_thread(deployment.add_user, "omar")
    try:
        lena = await deployment.client(started)
        await lena.create_group("ops")
        await lena.join_group("ops")

        async def lena_in_her_group() -> bool:
            listed = {line.split()[0]: line for line in await in_thread(admin, "users")}
            return "registered, in 1 group " in listed[started.user]

        await eventually(lena_in_her_group, timeout=20, what="lena registered in ops")
    finally:
        await deployment.stop_all()
    listed = {line.split()[0]: line for line in await in_thread(admin, "users")}
    assert "(directory entry without account)" not in listed[started.user]
    assert listed[started.user].endswith("chat user (inbox and receipts)")
    assert "directory: not registered  (account without directory entry)" in listed[idle.user]
    assert listed[idle.user].endswith("chat user (inbox and receipts)")
    assert "directory: not registered " in listed["admin"]
    assert "account without directory entry" not in listed["admin"]
