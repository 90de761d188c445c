"""Senders learn that their messages were delivered and read: per DM, per group member,
cumulatively and without one receipt per message."""

from __future__ import annotations

import json

from aio_pika.abc import AbstractRobustConnection

from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from tests.conftest import Deployment, RecordingSink, eventually, has_group, knows, members_are
from tests.test_wire_format import RawSpy


async def status_of(client: ChatClient, message_id: str) -> tuple[str, int, int]:
    message = await client.store.get_message(message_id)
    assert message is not None
    return message.status, message.delivered_count, message.read_count


async def last_seq(client: ChatClient, conversation: Conversation) -> int:
    return (await client.store.history(conversation, limit=1))[-1].seq


async def test_direct_message_is_marked_delivered_then_read(deployment: Deployment) -> None:
    alice_sink, bob_sink = RecordingSink(), RecordingSink()
    alice = await deployment.client("alice", alice_sink)
    bob = await deployment.client("bob", bob_sink)
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")

    sent = await alice.send(Conversation.dm("bob"), "did you get this?")
    await eventually(
        lambda: _is(alice, sent.message_id, ("delivered", 1, 0)), what="the delivered receipt"
    )
    # Delivered is not read: bob's face has not shown it as read yet.
    assert (await status_of(alice, sent.message_id))[0] == "delivered"

    await bob.mark_read(Conversation.dm("alice"), await last_seq(bob, Conversation.dm("alice")))
    await eventually(lambda: _is(alice, sent.message_id, ("read", 1, 1)), what="the read receipt")

    # The sink heard every step, in order.
    steps = [c.status for c in alice_sink.changes if c.message_id == sent.message_id]
    assert steps == sorted(steps, key=["queued", "sent", "delivered", "read"].index)
    assert steps[0] == "sent" and steps[-1] == "read" and "delivered" in steps

    (who,) = await alice.store.receipt_details(sent.message_id)
    assert who.member_id == "bob"
    assert who.delivered_at is not None and who.read_at is not None
    assert who.delivered_at <= who.read_at


async def _is(client: ChatClient, message_id: str, wanted: tuple[str, int, int]) -> bool:
    return await status_of(client, message_id) == wanted


async def test_group_receipts_count_members_and_name_them(deployment: Deployment) -> None:
    users = ("alice", "bob", "carol", "dave")
    clients = {user: await deployment.client(user) for user in users}
    alice = clients["alice"]
    await alice.create_group("team")
    for user in users[1:]:
        await eventually(lambda u=user: has_group(clients[u], "team"), what="the group")
        await clients[user].join_group("team")
    await eventually(
        lambda: members_are(alice, "team", *users), what="alice to see all four members"
    )
    team = Conversation.group("team")

    sent = await alice.send(team, "release at five")
    assert sent.recipient_count == 3
    await eventually(lambda: _is(alice, sent.message_id, ("delivered", 3, 0)), what="delivered 3/3")

    for reader in ("bob", "carol"):
        await eventually(
            lambda r=reader: _has_message(clients[r], team), what=f"{reader} to have it"
        )
        await clients[reader].mark_read(team, await last_seq(clients[reader], team))
    await eventually(lambda: _is(alice, sent.message_id, ("delivered", 3, 2)), what="read 2/3")

    details = {d.member_id: d for d in await alice.store.receipt_details(sent.message_id)}
    assert set(details) == {"bob", "carol", "dave"}
    assert all(d.delivered_at is not None for d in details.values())
    assert details["bob"].read_at is not None and details["carol"].read_at is not None
    assert details["dave"].read_at is None

    await clients["dave"].mark_read(team, await last_seq(clients["dave"], team))
    await eventually(lambda: _is(alice, sent.message_id, ("read", 3, 3)), what="read 3/3")


async def test_a_late_joiners_receipts_do_not_count_for_what_came_before(
    deployment: Deployment,
) -> None:
    clients = {user: await deployment.client(user) for user in ("alice", "bob", "carol")}
    alice, carol = clients["alice"], clients["carol"]
    await alice.create_group("team")
    await eventually(lambda: has_group(clients["bob"], "team"), what="the group")
    await clients["bob"].join_group("team")
    await eventually(lambda: members_are(alice, "team", "alice", "bob"), what="bob's join")
    await clients["bob"].stop()  # bob's copies wait in his inbox
    team = Conversation.group("team")

    before = await alice.send(team, "for bob only")
    await eventually(lambda: _is(alice, before.message_id, ("sent", 0, 0)), what="sent")
    await carol.join_group("team")
    await eventually(
        lambda: members_are(alice, "team", "alice", "bob", "carol"), what="carol's join"
    )
    after = await alice.send(team, "for bob and carol")
    assert (before.recipient_count, after.recipient_count) == (1, 2)
    await eventually(lambda: _has_message(carol, team), what="carol to have it")
    await carol.mark_read(team, await last_seq(carol, team))

    # carol's marks are cumulative over the conversation, but she was not sent the
    # first message: it waits for bob.
    await eventually(lambda: _is(alice, after.message_id, ("sent", 1, 1)), what="carol read")
    assert await status_of(alice, before.message_id) == ("sent", 0, 0)
    assert await alice.store.receipt_details(before.message_id) == []

    bob = await deployment.client("bob")
    await eventually(lambda: _has_message(bob, team), what="bob's backlog")
    await eventually(
        lambda: _is(alice, before.message_id, ("delivered", 1, 0)), what="bob's receipt"
    )
    await eventually(lambda: _is(alice, after.message_id, ("delivered", 2, 1)), what="2/2")


async def _has_message(client: ChatClient, conversation: Conversation) -> bool:
    return await client.store.message_count(conversation) > 0


async def test_no_read_receipt_when_read_receipts_are_off(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    alice_sink = RecordingSink()
    alice = await deployment.client("alice", alice_sink)
    bob = await deployment.client("bob", read_receipts=False)
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")
    # One spy queue for both of bob's routes to alice: bob publishes his outbox in
    # order on one channel, so a read receipt would arrive here before his reply.
    spy = await RawSpy.start(raw, deployment, "receipt.alice", "user.alice")

    sent = await alice.send(Conversation.dm("bob"), "read this")
    await eventually(
        lambda: _is(alice, sent.message_id, ("delivered", 1, 0)), what="the delivered receipt"
    )
    await bob.mark_read(Conversation.dm("alice"), await last_seq(bob, Conversation.dm("alice")))
    assert await bob.store.outbox_size() == 0, "a receipt was queued although they are off"
    await bob.send(Conversation.dm("alice"), "I saw it")
    await eventually(lambda: alice_sink.contents() == ["I saw it"], what="bob's reply")
    await eventually(
        lambda: any(m.routing_key == "user.alice" for m in spy.messages), what="the spy copy"
    )

    statuses = [b["status"] for b in spy.bodies("RECEIVE_MESSAGE")]
    assert statuses and set(statuses) == {"delivered"}
    assert await status_of(alice, sent.message_id) == ("delivered", 1, 0)
    # The unread count still goes down locally.
    summary = {s.conversation: s for s in await bob.store.conversations()}
    assert summary[Conversation.dm("alice")].unread_count == 0


async def test_fifty_messages_need_only_a_few_cumulative_receipts(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    alice = await deployment.client("alice")
    bob = await deployment.client("bob")
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")
    await bob.stop()
    spy = await RawSpy.start(raw, deployment, "receipt.alice")

    sent = [await alice.send(Conversation.dm("bob"), f"message {i}") for i in range(50)]
    assert await alice.flush(15)
    bob_sink = RecordingSink()
    bob = await deployment.client("bob", bob_sink)
    await eventually(lambda: len(bob_sink.shown) == 50, what="bob's 50 messages")
    await eventually(
        lambda: _all_have(alice, [m.message_id for m in sent], "delivered"),
        what="all 50 to show as delivered",
    )
    delivered = [json.loads(m.body) for m in spy.messages]
    assert delivered, "no receipt was published"
    assert len(delivered) <= 10, f"{len(delivered)} receipts for 50 messages"
    assert all(b["type"] == "RECEIVE_MESSAGE" and b["status"] == "delivered" for b in delivered)
    # Cumulative: the last receipt names the newest message and covers all before it.
    assert delivered[-1]["message_id"] == sent[-1].message_id

    await bob.mark_read(Conversation.dm("alice"), await last_seq(bob, Conversation.dm("alice")))
    await eventually(
        lambda: _all_have(alice, [m.message_id for m in sent], "read"),
        what="all 50 to show as read",
    )
    reads = [b for b in spy.bodies("RECEIVE_MESSAGE") if b["status"] == "read"]
    assert [b["message_id"] for b in reads] == [sent[-1].message_id]


async def _all_have(client: ChatClient, message_ids: list[str], status: str) -> bool:
    for message_id in message_ids:
        message = await client.store.get_message(message_id)
        if message is None or message.status != status:
            return False
    return True
