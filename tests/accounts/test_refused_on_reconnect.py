"""A refusal that comes after the first connection (issue 10, security review): an
account removed, a password changed, a right taken away or a queue deleted while the
client is online. RabbitMQ closes the link (or it is lost anyway), aio-pika's reconnect
loop would retry forever; the client must end refused, with what was refused and what
to do, in `fatal_error`, the status and the sink's problems, and stay so."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from chat_tui.core.client import ChatClient
from chat_tui.core.status import ConnectionState
from tests.accounts.provisioning import Account, AccountsDeployment
from tests.conftest import RecordingSink, eventually

REFUSED_WITHIN = 20.0


def connections_of(accounts: AccountsDeployment, user: str) -> list[dict[str, Any]]:
    with accounts.node.http() as api:
        listed = api.get("api/connections")
        listed.raise_for_status()
        return [c for c in listed.json() if c.get("user") == user]


async def close_connections_of(accounts: AccountsDeployment, user: str) -> None:
    """What a broker restart does to a user's links, without restarting the shared node:
    the administrator closes them through the management API. A new link shows there
    only after the next statistics round (5 s), so this waits for it."""
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        found[:] = await asyncio.to_thread(connections_of, accounts, user)
        return bool(found)

    await eventually(listed, what=f"{user}'s connection listed", timeout=15)
    with accounts.node.http() as api:
        for connection in found:
            api.delete(f"api/connections/{quote(connection['name'], safe='')}").raise_for_status()


async def online_client(accounts: AccountsDeployment, stem: str) -> tuple[Account, ChatClient]:
    account = accounts.add_user(stem)
    return account, await accounts.client(account)


async def refusal_of(client: ChatClient) -> str:
    """The refusal the client ends with; it must then stay refused, not reconnect."""
    await eventually(
        lambda: client.fatal_error is not None, what="the refusal", timeout=REFUSED_WITHIN
    )
    refusal = client.fatal_error
    assert refusal is not None
    assert client.status.refused == refusal
    assert client.status.state is ConnectionState.OFFLINE
    assert not client.online
    sink = client.sink
    assert isinstance(sink, RecordingSink)
    assert refusal in sink.problems
    # Several reconnect intervals later it still says so: the reconnecting has stopped.
    await asyncio.sleep(client.settings.reconnect_interval * 6)
    assert client.status.state is ConnectionState.OFFLINE, client.status
    assert client.status.refused == refusal
    assert sink.problems.count(refusal) == 1
    return refusal


async def test_a_removed_account_ends_refused_instead_of_reconnecting_forever(
    accounts: AccountsDeployment,
) -> None:
    alice, client = await online_client(accounts, "alice")
    accounts.admin.ok("remove-user", alice.user)
    refusal = await refusal_of(client)
    assert f"refused the credentials of '{alice.user}'" in refusal
    assert f"'chat-tui admin add-user {alice.user}'" in refusal
    assert alice.password not in refusal


async def test_a_changed_password_ends_refused_at_the_next_connection(
    accounts: AccountsDeployment,
) -> None:
    alice, client = await online_client(accounts, "alice")
    # A new password as `chat-tui admin passwd` sets it, through the API directly: that
    # command may also close the user's links, and here a later loss (a restart) must.
    accounts.admin.api_put(f"api/users/{alice.user}", {"password": "a-new-one", "tags": ""})
    await close_connections_of(accounts, alice.user)
    refusal = await refusal_of(client)
    assert f"refused the credentials of '{alice.user}'" in refusal
    assert f"'chat-tui admin passwd {alice.user}'" in refusal
    assert alice.password not in refusal


async def test_rights_taken_away_end_refused_with_the_command_that_repairs_them(
    accounts: AccountsDeployment,
) -> None:
    alice, client = await online_client(accounts, "alice")
    with accounts.node.http() as api:
        api.delete(f"api/permissions/{accounts.admin.v}/{alice.user}").raise_for_status()
    await close_connections_of(accounts, alice.user)
    refusal = await refusal_of(client)
    assert f"refused '{alice.user}' access to its virtual host" in refusal
    assert f"'chat-tui admin add-user {alice.user}'" in refusal


async def test_a_queue_deleted_meanwhile_ends_refused_with_the_command_that_restores_it(
    accounts: AccountsDeployment,
) -> None:
    alice, client = await online_client(accounts, "alice")
    receipts = accounts.names.receipts_queue(alice.user)
    with accounts.node.http() as api:
        api.delete(f"api/queues/{accounts.admin.v}/{quote(receipts, safe='')}").raise_for_status()
    await close_connections_of(accounts, alice.user)
    refusal = await refusal_of(client)
    assert receipts in refusal
    assert f"'chat-tui admin add-user {alice.user}'" in refusal


async def test_a_lost_link_with_the_login_still_valid_comes_back_online(
    accounts: AccountsDeployment,
) -> None:
    alice, client = await online_client(accounts, "alice")
    await close_connections_of(accounts, alice.user)
    sink = client.sink
    assert isinstance(sink, RecordingSink)
    await eventually(
        lambda: any(s.state is ConnectionState.RECONNECTING for s in sink.statuses),
        what="the loss noticed",
    )
    assert await client.wait_online(REFUSED_WITHIN), client.status
    assert client.fatal_error is None
    # The probes of the reconnecting left no connection of theirs behind.
    await asyncio.sleep(client.settings.reconnect_interval * 4)

    async def only_the_client() -> bool:
        found = await asyncio.to_thread(connections_of, accounts, alice.user)
        names = [c["client_properties"].get("connection_name") for c in found]
        return names == [f"chat-tui:{alice.user}"]

    await eventually(only_the_client, what="only the client's own connection", timeout=15)
