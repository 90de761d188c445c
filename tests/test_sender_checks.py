"""In accounts mode every receiver checks who published a delivery against the user its
body names; in open mode it cannot, and does not. On the memory broker: fast.

The attacker is eve, a provisioned account that bypasses chat-tui. The broker would
refuse a `user_id` other than her login, so her deliveries carry `eve` or nothing, with
bodies that claim to be someone else's."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.names import Names, directory_group_key, directory_user_key, receipt_key
from tests.conftest import RecordingSink, eventually
from tests.memory_transport import MemoryBroker

NAMESPACE = "senders"
SHARED_LOGIN = "guest"


class AccountsWorld:
    """Clients on one memory broker, each logged in as itself (accounts) or all as
    guest (open)."""

    def __init__(self, data_dir: Path, *, accounts: bool) -> None:
        self.names = Names(NAMESPACE)
        self.broker = MemoryBroker(self.names)
        self.data_dir = data_dir
        self.accounts = accounts
        self.clients: dict[str, ChatClient] = {}

    async def client(self, user: str) -> ChatClient:
        login = user if self.accounts else SHARED_LOGIN
        settings = Settings(
            user=user,
            namespace=NAMESPACE,
            data_dir=self.data_dir,
            amqp_url=f"amqp://{login}:pw@127.0.0.1:1/",
            reconnect_interval=0.05,
        )
        assert settings.accounts_mode is self.accounts
        link = self.broker.transport(user, login=login)
        client = ChatClient(settings, RecordingSink(), transport=link)
        await client.start()
        self.clients[user] = client
        assert await client.wait_online(5), f"{user} did not come online"
        assert await client.wait_directory(5)
        return client

    async def stop(self, user: str) -> None:
        """Stop a client once what it queued (its directory events) went out."""
        client = self.clients.pop(user)
        assert await client.flush(5)
        await client.stop()

    def publish_raw(self, key: str, body: dict[str, Any], *, user_id: str | None) -> None:
        assert self.broker.publish_raw(key, json.dumps(body).encode(), user_id=user_id)

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.broker.messages_in(self.names.dead_letters_queue)]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.stop()


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[AccountsWorld]:
    world = AccountsWorld(tmp_path, accounts=True)
    yield world
    await world.close()


@pytest.fixture
async def open_mode(tmp_path: Path) -> AsyncIterator[AccountsWorld]:
    world = AccountsWorld(tmp_path, accounts=False)
    yield world
    await world.close()


def sink_of(client: ChatClient) -> RecordingSink:
    assert isinstance(client.sink, RecordingSink)
    return client.sink


def chat(**fields: Any) -> dict[str, Any]:
    return {
        "type": "SEND_MESSAGE",
        "message_id": str(uuid.uuid4()),
        "content": "a message",
        "timestamp": "2026-11-27T07:10:31Z",
        **fields,
    }


def receipt(message_id: str, recipient_id: str, status: str = "read") -> dict[str, Any]:
    return {
        "type": "RECEIVE_MESSAGE",
        "recipient_id": recipient_id,
        "message_id": message_id,
        "status": status,
        "timestamp": "2026-11-27T07:10:31Z",
    }


def directory_event(event: str, user_id: str, group_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "DIRECTORY_EVENT",
        "event": event,
        "user_id": user_id,
        "group_id": group_id,
        "timestamp": "2026-11-27T07:10:31Z",
    }


async def _status_of(client: ChatClient, message_id: str) -> str | None:
    message = await client.store.get_message(message_id)
    return None if message is None else message.status


# --- SEND_MESSAGE -----------------------------------------------------------------------


async def test_a_message_from_its_own_sender_is_shown_and_read_in_accounts_mode(
    accounts: AccountsWorld,
) -> None:
    bob = await accounts.client("bob")
    alice = await accounts.client("alice")
    sent = await alice.send(Conversation.dm("bob"), "hello bob")
    await eventually(lambda: sink_of(bob).contents() == ["hello bob"], what="bob sees it")
    shown = sink_of(bob).shown[0]
    await bob.mark_read(shown.conversation, shown.seq)
    await eventually(lambda: _is(alice, sent.message_id, "read"), what="alice sees it read")
    assert bob.inbox.counters.rejected == 0
    assert alice.receipts.unverified == 0


async def test_a_message_in_someone_elses_name_is_dead_lettered(accounts: AccountsWorld) -> None:
    bob = await accounts.client("bob")
    forged = chat(sender_id="alice", recipient_id="bob", content="from alice, honest")
    accounts.publish_raw("user.bob", forged, user_id="eve")
    await eventually(lambda: bob.inbox.counters.rejected == 1, what="the forgery refused")
    assert bob.inbox.counters.unverified == 1
    assert accounts.dead_letters() == [forged]
    assert sink_of(bob).shown == []
    assert await bob.store.get_message(forged["message_id"]) is None


async def test_a_message_without_a_user_id_is_dead_lettered(accounts: AccountsWorld) -> None:
    bob = await accounts.client("bob")
    anonymous = chat(sender_id="alice", recipient_id="bob")
    accounts.publish_raw("user.bob", anonymous, user_id=None)
    await eventually(lambda: bob.inbox.counters.unverified == 1, what="the message refused")
    assert accounts.dead_letters() == [anonymous]
    assert sink_of(bob).shown == []


async def test_a_message_in_the_receivers_own_name_does_not_join_his_history(
    accounts: AccountsWorld,
) -> None:
    bob = await accounts.client("bob")
    await bob.create_group("team")
    forged = chat(sender_id="bob", group_id="team", content="I quit")
    accounts.publish_raw("group.team", forged, user_id="eve")
    await eventually(lambda: bob.inbox.counters.unverified == 1, what="the forgery refused")
    assert accounts.dead_letters() == [forged]
    assert await bob.store.get_message(forged["message_id"]) is None
    assert await bob.store.message_count(Conversation.group("team")) == 0


# --- RECEIVE_MESSAGE --------------------------------------------------------------------


async def _a_dm_waiting_for_bob(world: AccountsWorld) -> tuple[ChatClient, str]:
    """alice's DM to bob, sent while bob is away: it waits, unread, in his inbox."""
    await world.client("bob")
    await world.stop("bob")
    alice = await world.client("alice")
    sent = await alice.send(Conversation.dm("bob"), "are you there?")
    await eventually(lambda: _is(alice, sent.message_id, "sent"), what="the message sent")
    return alice, sent.message_id


async def _alice_and_bob_in_team(world: AccountsWorld) -> tuple[ChatClient, ChatClient]:
    """alice's group #team with bob in it, once alice sees him join."""
    alice = await world.client("alice")
    await alice.create_group("team")
    bob = await world.client("bob")
    await bob.join_group("team")
    await eventually(lambda: _member(alice, "team", "bob"), what="alice sees bob join")
    return alice, bob


async def test_a_receipt_published_by_someone_else_is_ignored(accounts: AccountsWorld) -> None:
    alice, message_id = await _a_dm_waiting_for_bob(accounts)
    accounts.publish_raw(receipt_key("alice"), receipt(message_id, "bob"), user_id="eve")
    accounts.publish_raw(receipt_key("alice"), receipt(message_id, "bob"), user_id=None)
    await eventually(lambda: alice.receipts.unverified == 2, what="both receipts ignored")
    assert alice.receipts.rejected == 0
    assert accounts.dead_letters() == []
    assert await _status_of(alice, message_id) == "sent"
    assert sink_of(alice).changes[-1].status == "sent"


async def test_a_group_receipt_counts_only_from_a_member(accounts: AccountsWorld) -> None:
    alice, _bob = await _alice_and_bob_in_team(accounts)
    await accounts.stop("bob")
    await accounts.client("eve")
    sent = await alice.send(Conversation.group("team"), "standup at ten")
    await eventually(lambda: _is(alice, sent.message_id, "sent"), what="the message sent")

    # eve's own receipt, in her own name: true to the broker, but she is not a member.
    accounts.publish_raw(receipt_key("alice"), receipt(sent.message_id, "eve"), user_id="eve")
    await eventually(lambda: alice.receipts.unverified == 1, what="eve's receipt ignored")
    assert await _status_of(alice, sent.message_id) == "sent"
    assert [r.member_id for r in await alice.store.receipt_details(sent.message_id)] == []

    # bob's, though no chat-tui client sent it, counts: he is a member.
    accounts.publish_raw(receipt_key("alice"), receipt(sent.message_id, "bob"), user_id="bob")
    await eventually(lambda: _is(alice, sent.message_id, "read"), what="bob's receipt counted")
    assert alice.receipts.unverified == 1


async def test_a_late_joiners_read_does_not_make_a_group_message_read(
    accounts: AccountsWorld,
) -> None:
    alice, _bob = await _alice_and_bob_in_team(accounts)
    await accounts.stop("bob")
    sent = await alice.send(Conversation.group("team"), "before eve joined")
    await eventually(lambda: _is(alice, sent.message_id, "sent"), what="the message sent")
    # Groups are public: eve joins after the message went out, then claims to have read
    # it, in her own name (true to the broker, and she is a member now).
    eve = await accounts.client("eve")
    await eve.join_group("team")
    await eventually(lambda: _member(alice, "team", "eve"), what="alice sees eve join")

    accounts.publish_raw(receipt_key("alice"), receipt(sent.message_id, "eve"), user_id="eve")
    await eventually(lambda: alice.receipts.unverified == 1, what="eve's receipt ignored")
    message = await alice.store.get_message(sent.message_id)
    assert message is not None
    assert (message.status, message.recipient_count, message.read_count) == ("sent", 1, 0)
    assert await alice.store.receipt_details(sent.message_id) == []

    # Sent to bob, it is read once he says so.
    accounts.publish_raw(receipt_key("alice"), receipt(sent.message_id, "bob"), user_id="bob")
    await eventually(lambda: _is(alice, sent.message_id, "read"), what="bob's receipt counted")
    assert [r.member_id for r in await alice.store.receipt_details(sent.message_id)] == ["bob"]
    assert alice.receipts.unverified == 1


async def test_a_member_who_read_and_then_left_still_counts(accounts: AccountsWorld) -> None:
    alice, bob = await _alice_and_bob_in_team(accounts)
    team = Conversation.group("team")
    sent = await alice.send(team, "read this, then go")
    await eventually(lambda: _is(alice, sent.message_id, "delivered"), what="delivered")

    await bob.leave_group("team")
    await eventually(lambda: _members_are(alice, "team", ["alice"]), what="alice sees bob go")
    # bob's read receipt for what he was sent arrives after alice saw him leave.
    await bob.mark_read(team, sink_of(bob).shown[-1].seq)
    await eventually(lambda: _is(alice, sent.message_id, "read"), what="bob's read counted")
    assert alice.receipts.unverified == 0


async def test_a_dms_receipt_counts_only_from_its_recipient(accounts: AccountsWorld) -> None:
    alice, message_id = await _a_dm_waiting_for_bob(accounts)
    await accounts.client("eve")
    # eve's own receipt, in her own name: true to the broker, but the DM went to bob.
    accounts.publish_raw(receipt_key("alice"), receipt(message_id, "eve"), user_id="eve")
    await eventually(lambda: alice.receipts.unverified == 1, what="eve's receipt ignored")
    assert await _status_of(alice, message_id) == "sent"
    assert await alice.store.receipt_details(message_id) == []

    accounts.publish_raw(receipt_key("alice"), receipt(message_id, "bob"), user_id="bob")
    await eventually(lambda: _is(alice, message_id, "read"), what="bob's receipt counted")
    assert [r.member_id for r in await alice.store.receipt_details(message_id)] == ["bob"]
    assert alice.receipts.unverified == 1


# --- DIRECTORY_EVENT --------------------------------------------------------------------


async def test_directory_events_in_someone_elses_name_or_under_another_key_are_skipped(
    accounts: AccountsWorld,
) -> None:
    alice, _bob = await _alice_and_bob_in_team(accounts)
    forgeries = [
        # bob "leaves", in eve's hand.
        (directory_group_key("team"), directory_event("left", "bob", "team"), "eve"),
        # a fake user, in nobody's hand.
        (directory_user_key("mallory"), directory_event("registered", "mallory"), None),
        # eve's own event, under the key of another group than its body's.
        (directory_group_key("team"), directory_event("created", "eve", "elsewhere"), "eve"),
        # eve's own registration, published where a group's events go.
        (directory_group_key("team"), directory_event("registered", "eve"), "eve"),
    ]
    for key, event, user_id in forgeries:
        accounts.publish_raw(key, event, user_id=user_id)
    # Then one that is true, from a client that is not chat-tui: it is folded.
    accounts.publish_raw(
        directory_user_key("eve"), directory_event("registered", "eve"), user_id="eve"
    )
    await eventually(lambda: alice.directory.unverified == len(forgeries), what="all skipped")
    await eventually(lambda: _knows(alice, "eve"), what="eve's true registration folded")
    assert await alice.members("team") == ["alice", "bob"]
    assert await alice.store.users() == ["alice", "bob", "eve"]
    assert await alice.store.groups() == ["team"]
    assert alice.directory.invalid == 0


# --- open mode --------------------------------------------------------------------------


async def test_open_mode_checks_no_sender_as_it_never_did(open_mode: AccountsWorld) -> None:
    bob = await open_mode.client("bob")
    await bob.create_group("team")
    alice = await open_mode.client("alice")
    await alice.join_group("team")
    # On a shared login everyone publishes as guest: the body is all there is.
    forged = chat(sender_id="alice", recipient_id="bob", content="trust me")
    open_mode.publish_raw("user.bob", forged, user_id=SHARED_LOGIN)
    await eventually(lambda: sink_of(bob).contents() == ["trust me"], what="shown, as today")
    sent = await alice.send(Conversation.dm("bob"), "a real one")
    await eventually(lambda: _is(alice, sent.message_id, "delivered"), what="delivered")
    open_mode.publish_raw(receipt_key("alice"), receipt(sent.message_id, "bob"), user_id=None)
    await eventually(lambda: _is(alice, sent.message_id, "read"), what="receipt applied")
    open_mode.publish_raw(
        directory_group_key("team"), directory_event("left", "bob", "team"), user_id=SHARED_LOGIN
    )
    await eventually(lambda: _members_are(alice, "team", ["alice"]), what="event folded")
    assert bob.inbox.counters.rejected == 0
    assert alice.receipts.unverified == 0
    assert alice.directory.unverified == 0


async def _is(client: ChatClient, message_id: str, status: str) -> bool:
    return await _status_of(client, message_id) == status


async def _member(client: ChatClient, group: str, user: str) -> bool:
    return user in await client.members(group)


async def _members_are(client: ChatClient, group: str, members: list[str]) -> bool:
    return await client.members(group) == members


async def _knows(client: ChatClient, user: str) -> bool:
    return user in await client.store.users()
