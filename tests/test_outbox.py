"""The outbox: nothing typed is lost while offline, it leaves later with the same
message_id, and a DM nobody can receive ends as a clear failure, never a silent drop."""

from __future__ import annotations

import asyncio

import pytest

from chat_tui.core.errors import InvalidInputError, UnknownUserError
from chat_tui.core.status import ConnectionState
from chat_tui.protocol.conversations import Conversation
from tests.conftest import (
    Deployment,
    RecordingSink,
    closed_port_url,
    eventually,
    has_group,
    is_member,
    knows,
)


async def test_messages_wait_in_the_outbox_while_offline_and_leave_with_the_same_id(
    deployment: Deployment,
) -> None:
    bob_sink = RecordingSink()
    alice = await deployment.client("alice")
    await deployment.client("bob", bob_sink)
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")
    await alice.create_group("team")
    await alice.stop()

    offline_sink = RecordingSink()
    offline = await deployment.client(
        "alice", offline_sink, online=False, amqp_url=closed_port_url()
    )
    assert not await offline.wait_first_attempt(10)
    queued = [
        await offline.send(Conversation.dm("bob"), "first, while offline"),
        await offline.send(Conversation.group("team"), "second, while offline"),
        await offline.send(Conversation.dm("bob"), "third, while offline"),
    ]
    assert [m.status for m in queued] == ["queued"] * 3
    await eventually(lambda: offline.status.unsent_messages == 3, what="the header's unsent count")
    assert offline.status.state is ConnectionState.OFFLINE
    assert offline.status.error and "cannot reach RabbitMQ" in offline.status.error
    assert await offline.store.pending_messages() == 3
    # Still there after retries: offline never turns them into failures.
    await eventually(lambda: offline.status.next_retry_at is not None, what="a retry time")
    for message in queued:
        stored = await offline.store.get_message(message.message_id)
        assert stored is not None and stored.status == "queued"
    await offline.stop()
    assert bob_sink.shown == []

    back = await deployment.client("alice")
    for message in queued:
        change = await back.wait_sent(message.message_id, timeout=10)
        assert change.status in {"sent", "delivered"}
    await eventually(lambda: len(bob_sink.shown) == 2, what="bob to get the two DMs")
    assert [(m.message_id, m.content) for m in bob_sink.shown] == [
        (queued[0].message_id, "first, while offline"),
        (queued[2].message_id, "third, while offline"),
    ]
    assert await back.store.pending_messages() == 0
    history = await back.store.history(Conversation.dm("bob"))
    assert [m.message_id for m in history] == [queued[0].message_id, queued[2].message_id]


async def test_direct_message_to_a_user_without_inbox_fails_as_unknown_user(
    deployment: Deployment,
) -> None:
    sink = RecordingSink()
    # Sent before this fresh client has read the directory: only the broker can tell
    # that nobody is bound to user.ghost, by returning the mandatory publish.
    alice = await deployment.client("alice", sink, online=False)
    sent = await alice.send(Conversation.dm("ghost"), "anyone there?")
    change = await alice.wait_sent(sent.message_id, timeout=15)
    assert change.status == "failed"
    assert change.error is not None and "unknown user 'ghost'" in change.error
    stored = await alice.store.get_message(sent.message_id)
    assert stored is not None and stored.status == "failed" and stored.error == change.error
    assert await alice.store.pending_messages() == 0
    assert any("unknown user 'ghost'" in problem for problem in sink.problems)


async def test_client_refuses_a_direct_message_to_a_user_the_directory_does_not_know(
    deployment: Deployment,
) -> None:
    alice = await deployment.client("alice")
    await deployment.client("bob")
    await eventually(lambda: knows(alice, "alice", "bob"), what="alice to know both users")
    with pytest.raises(UnknownUserError, match="unknown user 'ghost'"):
        await alice.send(Conversation.dm("ghost"), "anyone there?")
    assert await alice.store.outbox_size() == 0
    assert await alice.store.message_count(Conversation.dm("ghost")) == 0


async def test_invalid_text_is_refused_before_anything_is_stored(deployment: Deployment) -> None:
    alice = await deployment.client("alice")
    await deployment.client("bob")
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")
    with pytest.raises(InvalidInputError, match="empty"):
        await alice.send(Conversation.dm("bob"), "   \n\t")
    with pytest.raises(InvalidInputError, match="16384"):
        await alice.send(Conversation.dm("bob"), "é" * 8193)
    # Exactly at the limit is fine.
    at_limit = await alice.send(Conversation.dm("bob"), "x" * 16384)
    assert (await alice.wait_sent(at_limit.message_id, timeout=10)).status != "failed"
    assert await alice.store.message_count(Conversation.dm("bob")) == 1


async def test_a_burst_of_messages_goes_out_once_each_and_in_order(deployment: Deployment) -> None:
    # A message sent while the publisher is idle goes out without being read back from
    # the outbox; one sent while a window is in flight waits for its turn in the table.
    # Mixed with receipts and a group, each must still leave exactly once, in order.
    bob_sink = RecordingSink()
    alice = await deployment.client("alice")
    bob = await deployment.client("bob", bob_sink)
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")
    await alice.create_group("burst")
    await eventually(lambda: has_group(bob, "burst"), what="bob to see the group")
    await bob.join_group("burst")
    await eventually(lambda: is_member(alice, "burst", "bob"), what="alice to see bob join")
    texts: list[str] = []
    for round_number in range(5):
        burst = [f"dm {round_number}.{i}" for i in range(20)]
        await asyncio.gather(*(alice.send(Conversation.dm("bob"), text) for text in burst))
        texts += burst
        await alice.send(Conversation.group("burst"), f"group {round_number}")
        texts.append(f"group {round_number}")
        await asyncio.sleep(0.01 * round_number)
    assert await alice.flush(20)
    # Flushed, every row is confirmed and gone: nothing of the burst can be published
    # again. A sentinel sent now queues behind every copy in bob's one inbox, so once
    # bob shows it he has received, and counted, anything alice published twice.
    sentinel = "sentinel after the burst"
    await alice.send(Conversation.dm("bob"), sentinel)
    await eventually(lambda: sentinel in bob_sink.contents(), what="bob to get the sentinel")
    assert bob_sink.contents() == [*texts, sentinel]
    assert bob.inbox is not None and bob.inbox.counters.duplicates == 0
