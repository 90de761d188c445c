"""`chat-tui admin` with queue_type = "quorum" on the managed node: it provisions the
quorum layout, idempotently; a deployment of the other type is refused in plain words;
accounts-mode clients chat on the quorum queues it made."""

from __future__ import annotations

import pytest

from chat_tui.admin.api import AdminError, ManagementApi
from chat_tui.admin.provision import Provisioner
from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.queues import QueueType, dead_letters_arguments, personal_queue_arguments
from tests.accounts import test_admin
from tests.accounts.provisioning import Account, AccountsDeployment, Admin, shown
from tests.conftest import eventually, knows

admin = test_admin.admin
"""The admin tests' own fixture: an `Admin` on a fresh vhost, its accounts deleted after."""


async def init(admin: Admin, queue_type: QueueType) -> list[str]:
    """`chat-tui admin init` in-process, with the deployment's `queue_type`."""
    lines: list[str] = []
    async with ManagementApi(admin.node.admin_url, admin.vhost) as api:
        await Provisioner(api, admin.names, lines.append, queue_type).init()
    return lines


async def add_user(admin: Admin, stem: str, queue_type: QueueType) -> tuple[Account, list[str]]:
    lines: list[str] = []
    account = Account(admin.user_id(stem), f"secret-of-{stem}")
    async with ManagementApi(admin.node.admin_url, admin.vhost) as api:
        await Provisioner(api, admin.names, lines.append, queue_type).add_user(
            account.user, account.password
        )
    return account, lines


def queue_of(admin: Admin, name: str) -> dict[str, object]:
    found = admin.api_get(f"api/queues/{admin.v}/{name}")
    assert isinstance(found, dict)
    return found


async def test_quorum_init_and_add_user_provision_quorum_queues_once(admin: Admin) -> None:
    names = admin.names
    first = await init(admin, "quorum")
    assert f"queue {names.dead_letters_queue}: created" in first
    dead_letters = queue_of(admin, names.dead_letters_queue)
    assert dead_letters["type"] == "quorum"
    assert dead_letters["arguments"] == dead_letters_arguments("quorum")
    assert queue_of(admin, names.directory_stream)["type"] == "stream"

    alice, lines = await add_user(admin, "alice", "quorum")
    for queue in (names.inbox_queue(alice.user), names.receipts_queue(alice.user)):
        assert f"queue {queue}: created" in lines
        found = queue_of(admin, queue)
        assert found["type"] == "quorum"
        assert found["arguments"] == personal_queue_arguments(names, "quorum")

    again = await init(admin, "quorum")
    assert f"queue {names.dead_letters_queue}: already there" in again


async def test_quorum_init_on_a_classic_deployment_says_to_match_it(admin: Admin) -> None:
    await init(admin, "classic")
    with pytest.raises(AdminError) as refused:
        await init(admin, "quorum")
    assert str(refused.value).startswith(
        f"queue {admin.names.dead_letters_queue} is a classic queue, but this deployment's "
        "queue_type is quorum: set queue_type to classic"
    ), refused.value
    assert queue_of(admin, admin.names.dead_letters_queue)["type"] == "classic"


async def test_accounts_chat_on_quorum_queues(admin: Admin) -> None:
    await init(admin, "quorum")
    alice, _ = await add_user(admin, "alice", "quorum")
    bob, _ = await add_user(admin, "bob", "quorum")
    deployment = AccountsDeployment(admin)
    try:
        alice_client = await deployment.client(alice)
        bob_client = await deployment.client(bob)
        await eventually(lambda: knows(alice_client, bob.user), what="alice to know bob")
        sent = await alice_client.send(Conversation.dm(bob.user), "on a quorum inbox")
        await eventually(lambda: shown(bob_client) == ["on a quorum inbox"], what="the DM")
        await alice_client.wait_sent(sent.message_id, timeout=10)
        await eventually(
            lambda: _status_is(alice_client, sent.message_id, "delivered"), what="delivered"
        )
    finally:
        await deployment.stop_all()


async def _status_is(client: ChatClient, message_id: str, status: str) -> bool:
    message = await client.store.get_message(message_id)
    return message is not None and message.status == status
