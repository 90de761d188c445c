"""The chat user's permissions and the protocol's topology as data, without a broker: the
regexes accept every name and routing key the client uses for itself, and refuse those
of other users. RabbitMQ matches them the way `re.search` does, after expanding
`{username}` in topic permissions only."""

from __future__ import annotations

import re

import pytest

from chat_tui.protocol.ids import is_valid_id
from chat_tui.protocol.names import (
    ARCHIVE_REQUEST_KEY,
    DIRECTORY_BINDING,
    Names,
    directory_group_key,
    directory_user_key,
    group_key,
    receipt_key,
    user_key,
)
from chat_tui.protocol.permissions import (
    AccountPermissions,
    archive_login,
    archive_permissions,
    chat_user_permissions,
)
from chat_tui.protocol.queues import (
    DEAD_LETTERS_MAX_LENGTH,
    personal_queue_arguments,
    personal_topology,
    shared_topology,
)

NAMES = Names("chat")
ALICE = chat_user_permissions(NAMES, "alice")


def allows(pattern: str, subject: str, user: str = "alice") -> bool:
    return re.search(pattern.replace("{username}", user), subject) is not None


def test_alice_gets_exactly_the_permissions_the_issue_lists() -> None:
    assert ALICE.vhost.configure == "^$"
    assert ALICE.vhost.write == r"^chat\.(messages|(inbox|receipts)\.alice)$"
    assert ALICE.vhost.read == r"^chat\.(messages|directory|(inbox|receipts)\.alice)$"
    assert ALICE.topic.exchange == "chat.messages"
    assert ALICE.topic.write == (
        r"^(user|group|receipt)\.[a-z0-9][a-z0-9_-]*$|^directory\.user\.{username}$"
        r"|^directory\.group\.[a-z0-9][a-z0-9_-]*$|^archive\.request$"
    )
    assert ALICE.topic.read == r"^(user|receipt)\.{username}$|^group\.[a-z0-9][a-z0-9_-]*$"


def test_a_user_configures_nothing() -> None:
    for name in (
        NAMES.messages_exchange,
        NAMES.dead_exchange,
        NAMES.dead_letters_queue,
        NAMES.directory_stream,
        NAMES.inbox_queue("alice"),
        NAMES.receipts_queue("alice"),
        "amq.gen-JzTY20BRgKO-HjmUJj0wLg",
    ):
        assert not allows(ALICE.vhost.configure, name), name


def test_a_user_writes_to_the_exchange_and_binds_only_her_own_queues() -> None:
    for name in (
        NAMES.messages_exchange,
        NAMES.inbox_queue("alice"),
        NAMES.receipts_queue("alice"),
    ):
        assert allows(ALICE.vhost.write, name), name
    for name in (
        NAMES.inbox_queue("bob"),
        NAMES.receipts_queue("bob"),
        NAMES.inbox_queue("alice2"),
        NAMES.directory_stream,
        NAMES.dead_exchange,
        NAMES.dead_letters_queue,
        Names("other").messages_exchange,
    ):
        assert not allows(ALICE.vhost.write, name), name


def test_a_user_reads_the_directory_and_her_own_queues_only() -> None:
    for name in (
        NAMES.messages_exchange,
        NAMES.directory_stream,
        NAMES.inbox_queue("alice"),
        NAMES.receipts_queue("alice"),
    ):
        assert allows(ALICE.vhost.read, name), name
    for name in (NAMES.inbox_queue("bob"), NAMES.receipts_queue("bob"), NAMES.dead_letters_queue):
        assert not allows(ALICE.vhost.read, name), name


def test_a_user_publishes_what_the_client_publishes_and_speaks_only_for_herself() -> None:
    for key in (
        user_key("bob"),
        group_key("devs"),
        receipt_key("bob"),
        directory_user_key("alice"),
        directory_group_key("devs"),
        ARCHIVE_REQUEST_KEY,
    ):
        assert allows(ALICE.topic.write, key), key
    for key in (
        directory_user_key("bob"),
        "directory.user.alice2",
        "user.#",
        "other.bob",
        "user.",
        "archive.requests",
        "archive.#",
    ):
        assert not allows(ALICE.topic.write, key), key


def test_a_user_binds_her_own_keys_and_groups_but_never_anothers_dms() -> None:
    for key in (user_key("alice"), receipt_key("alice"), group_key("devs"), group_key("a-b_c")):
        assert allows(ALICE.topic.read, key), key
    for key in (
        user_key("bob"),
        receipt_key("bob"),
        "user.alice2",
        "#",
        "user.*",
        "group.#",
        "group.*",
        DIRECTORY_BINDING,
    ):
        assert not allows(ALICE.topic.read, key), key


def test_the_namespace_is_escaped_in_the_regexes() -> None:
    dotted = chat_user_permissions(Names("t.x"), "bob")
    assert allows(dotted.vhost.write, "t.x.inbox.bob")
    assert not allows(dotted.vhost.write, "tAx.inbox.bob")
    assert not allows(dotted.vhost.read, "tAxAdirectory")


def test_permissions_need_a_valid_user_id() -> None:
    with pytest.raises(ValueError, match="invalid user ID"):
        chat_user_permissions(NAMES, "Bob.*")


def test_every_user_gets_the_same_shape_of_permissions() -> None:
    bob = chat_user_permissions(NAMES, "bob")
    assert isinstance(bob, AccountPermissions)
    assert bob.topic == ALICE.topic  # {username} is expanded by the broker
    assert bob.vhost.write == ALICE.vhost.write.replace("alice", "bob")


def test_the_shared_topology_is_the_protocols() -> None:
    shared = shared_topology(NAMES)
    assert [(e.name, e.type, e.durable) for e in shared.exchanges] == [
        ("chat.messages", "topic", True),
        ("chat.dead", "fanout", True),
    ]
    assert {q.name: dict(q.arguments) for q in shared.queues} == {
        "chat.dead-letters": {"x-max-length": DEAD_LETTERS_MAX_LENGTH},
        "chat.directory": {"x-queue-type": "stream"},
    }
    assert all(q.durable for q in shared.queues)
    assert [(b.exchange, b.queue, b.routing_key) for b in shared.bindings] == [
        ("chat.dead", "chat.dead-letters", ""),
        ("chat.messages", "chat.directory", "directory.#"),
    ]


def test_a_users_queues_dead_letter_and_take_one_consumer() -> None:
    personal = personal_topology(NAMES, "alice")
    assert personal.exchanges == ()
    assert [(q.name, dict(q.arguments)) for q in personal.queues] == [
        ("chat.inbox.alice", personal_queue_arguments(NAMES)),
        ("chat.receipts.alice", personal_queue_arguments(NAMES)),
    ]
    assert personal_queue_arguments(NAMES) == {
        "x-dead-letter-exchange": "chat.dead",
        "x-single-active-consumer": True,
    }
    assert [(b.queue, b.routing_key) for b in personal.bindings] == [
        ("chat.inbox.alice", "user.alice"),
        ("chat.receipts.alice", "receipt.alice"),
    ]


ARCHIVE = archive_permissions(NAMES)


def test_the_archive_logs_in_with_a_login_no_user_id_can_have() -> None:
    for namespace in ("chat", "t.x", "Chat-1"):
        login = archive_login(Names(namespace))
        assert login == f"{namespace}.archive"
        assert not is_valid_id(login)


def test_the_archive_reads_its_queues_and_the_directory_and_writes_only_its_replies() -> None:
    assert ARCHIVE.vhost.configure == "^$"
    assert ARCHIVE.vhost.write == r"^amq\.default$"
    assert ARCHIVE.vhost.read == r"^chat\.(archive|archive\.requests|directory)$"
    for name in (NAMES.archive_queue, NAMES.archive_requests_queue, NAMES.directory_stream):
        assert allows(ARCHIVE.vhost.read, name), name
    for name in (
        NAMES.inbox_queue("alice"),
        NAMES.receipts_queue("alice"),
        NAMES.dead_letters_queue,
        NAMES.messages_exchange,
        "chat.archive.requestsX",
        Names("other").archive_queue,
    ):
        assert not allows(ARCHIVE.vhost.read, name), name
    for name in (NAMES.messages_exchange, NAMES.archive_queue, "amq.defaultX", ""):
        assert not allows(ARCHIVE.vhost.write, name), name
    assert ARCHIVE.topic.exchange == NAMES.messages_exchange
    for key in (group_key("devs"), user_key("bob"), directory_user_key("bob"), "#"):
        assert not allows(ARCHIVE.topic.write, key), key
        assert not allows(ARCHIVE.topic.read, key), key


def test_no_chat_user_may_write_to_the_default_exchange() -> None:
    assert not allows(ALICE.vhost.write, "amq.default")
