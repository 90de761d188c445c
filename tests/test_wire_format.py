"""What chat-tui puts on the wire matches docs/protocol.md.

These tests read the broker with plain aio-pika and `json`, never with chat_tui.protocol
models, so that a mistake shared by the encoder and the decoder cannot hide. The raw
helpers here (RawSpy, queue_depth, read_directory_stream) are reused by other test files.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiormq.exceptions import ChannelPreconditionFailed

from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from tests.conftest import Deployment, eventually, has_group, is_member, knows

SEND_KEYS = {"type", "message_id", "sender_id", "group_id", "recipient_id", "content", "timestamp"}
RECEIVE_KEYS = {"type", "recipient_id", "message_id", "status", "timestamp"}
DIRECTORY_KEYS = {"type", "event", "user_id", "group_id", "timestamp"}

ARCHIVE_REQUESTS = {"HISTORY_REQUEST", "SEARCH_REQUEST"}
"""Transient, and answered on direct reply-to: their own properties (docs/protocol.md)."""


class RawSpy:
    """A private, exclusive queue bound to NS.messages that keeps a copy of everything
    published with the given routing keys (topic patterns allowed)."""

    def __init__(self) -> None:
        self.messages: list[AbstractIncomingMessage] = []

    @classmethod
    async def start(
        cls, connection: AbstractRobustConnection, deployment: Deployment, *keys: str
    ) -> RawSpy:
        spy = cls()
        channel = await connection.channel()
        # Declared with the documented arguments, so this is harmless if it exists.
        exchange = await channel.declare_exchange(
            deployment.names.messages_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        for key in keys:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(spy._keep, no_ack=True)
        return spy

    async def _keep(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)

    def bodies(self, message_type: str | None = None) -> list[dict[str, Any]]:
        decoded = [json.loads(m.body.decode("utf-8")) for m in self.messages]
        return [b for b in decoded if message_type is None or b.get("type") == message_type]


async def queue_depth(connection: AbstractRobustConnection, name: str) -> int:
    """How many ready messages a queue holds (a passive declare)."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        assert queue.declaration_result is not None
        count = queue.declaration_result.message_count
        assert count is not None
        return count
    finally:
        await channel.close()


async def read_directory_stream(
    connection: AbstractRobustConnection, deployment: Deployment, quiet: float = 0.5
) -> list[AbstractIncomingMessage]:
    """Every entry of NS.directory from the first, read until nothing comes for `quiet` s."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=1000)
    stream = await channel.declare_queue(
        deployment.names.directory_stream, durable=True, arguments={"x-queue-type": "stream"}
    )
    entries: list[AbstractIncomingMessage] = []
    arrived = asyncio.Event()

    async def keep(message: AbstractIncomingMessage) -> None:
        entries.append(message)
        arrived.set()
        await message.ack()

    await stream.consume(keep, arguments={"x-stream-offset": "first"})
    while True:
        arrived.clear()
        try:
            await asyncio.wait_for(arrived.wait(), quiet)
        except TimeoutError:
            break
    await channel.close()
    return entries


def is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def utc_iso(value: object) -> datetime:
    """Parse a body timestamp, insisting on ISO-8601 UTC with the `Z` suffix we write."""
    assert isinstance(value, str) and value.endswith("Z"), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


async def test_everything_published_carries_the_documented_properties_and_bodies(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    spy = await RawSpy.start(raw, deployment, "#")
    started = datetime.now(UTC) - timedelta(seconds=5)
    alice = await deployment.client("alice")
    await eventually(lambda: knows(alice, "alice"), what="alice's registration")
    bob = await deployment.client("bob")
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")

    await alice.create_group("team")
    await eventually(lambda: has_group(bob, "team"), what="bob to see the group alice created")
    await bob.join_group("team")
    await eventually(lambda: is_member(alice, "team", "bob"), what="alice to see bob join")
    group_message = await alice.send(Conversation.group("team"), "hello team")
    direct_message = await alice.send(Conversation.dm("bob"), "hello bob")
    await eventually(
        lambda: _status(alice, direct_message.message_id, "delivered"), what="bob's receipt"
    )
    dm_at_bob = (await bob.store.history(Conversation.dm("alice")))[-1]
    await bob.mark_read(Conversation.dm("alice"), dm_at_bob.seq)
    await eventually(lambda: _status(alice, direct_message.message_id, "read"), what="read")
    await bob.leave_group("team")
    await eventually(
        lambda: len(spy.bodies("DIRECTORY_EVENT")) == 6, what="the six directory events"
    )

    for message in spy.messages:
        body = json.loads(message.body.decode("utf-8"))
        assert isinstance(body, dict)
        assert message.content_type == "application/json"
        if body["type"] in ARCHIVE_REQUESTS:  # bob's join asks the archive for history
            assert message.routing_key == "archive.request"
            assert message.delivery_mode == 1
            assert (message.reply_to or "").startswith(
                "amq.rabbitmq.reply-to."
            )  # the broker's form
            assert message.correlation_id and message.correlation_id == message.message_id
            assert message.type == body["type"] and body["protocol_version"] == 2
            continue
        assert message.delivery_mode == 2
        assert message.type == body["type"]
        assert message.app_id == "chat-tui"
        assert message.timestamp is not None
        assert started <= message.timestamp.replace(tzinfo=UTC) <= datetime.now(UTC)
        assert is_uuid(message.message_id)
        assert utc_iso(body["timestamp"]) >= started
        if body["type"] == "SEND_MESSAGE":
            assert set(body) == SEND_KEYS
            assert is_uuid(body["message_id"])
            assert message.message_id == body["message_id"]
        else:
            assert message.message_id != body.get("message_id")

    sends = {m.routing_key: json.loads(m.body) for m in spy.messages if m.type == "SEND_MESSAGE"}
    assert set(sends) == {"group.team", "user.bob"}
    assert sends["group.team"] == {
        "type": "SEND_MESSAGE",
        "message_id": group_message.message_id,
        "sender_id": "alice",
        "group_id": "team",
        "recipient_id": None,
        "content": "hello team",
        "timestamp": sends["group.team"]["timestamp"],
    }
    assert sends["user.bob"] == {
        "type": "SEND_MESSAGE",
        "message_id": direct_message.message_id,
        "sender_id": "alice",
        "group_id": None,
        "recipient_id": "bob",
        "content": "hello bob",
        "timestamp": sends["user.bob"]["timestamp"],
    }

    receipts = [m for m in spy.messages if m.type == "RECEIVE_MESSAGE"]
    assert receipts, "no receipt was published"
    for receipt in receipts:
        body = json.loads(receipt.body)
        assert set(body) == RECEIVE_KEYS
        assert is_uuid(body["message_id"])
        assert receipt.routing_key == "receipt.alice"
        assert body["recipient_id"] == "bob"
        assert body["status"] in {"delivered", "read"}
        assert body["message_id"] in {group_message.message_id, direct_message.message_id}
    statuses = {json.loads(r.body)["status"] for r in receipts}
    assert statuses == {"delivered", "read"}

    directory = [
        (m.routing_key, json.loads(m.body)) for m in spy.messages if m.type == "DIRECTORY_EVENT"
    ]
    for _key, body in directory:
        assert set(body) == DIRECTORY_KEYS
    assert [(key, b["event"], b["user_id"], b["group_id"]) for key, b in directory] == [
        ("directory.user.alice", "registered", "alice", None),
        ("directory.user.bob", "registered", "bob", None),
        ("directory.group.team", "created", "alice", "team"),
        ("directory.group.team", "joined", "alice", "team"),
        ("directory.group.team", "joined", "bob", "team"),
        ("directory.group.team", "left", "bob", "team"),
    ]
    # Nothing else: every message is one of the three documented types.
    # Bob's join asked the archive for the group's history (none answers here).
    kinds = {"SEND_MESSAGE", "RECEIVE_MESSAGE", "DIRECTORY_EVENT", "HISTORY_REQUEST"}
    assert {m.type for m in spy.messages} == kinds


async def _status(client: ChatClient, message_id: str, status: str) -> bool:
    message = await client.store.get_message(message_id)
    return message is not None and message.status == status


async def _redeclare_fails(
    connection: AbstractRobustConnection, declare: Any, *args: Any, **kwargs: Any
) -> bool:
    channel: AbstractChannel = await connection.channel()
    try:
        await declare(channel, *args, **kwargs)
    except ChannelPreconditionFailed:
        return True
    await channel.close()
    return False


async def test_exchanges_and_queues_are_declared_with_the_documented_arguments(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    await deployment.client("bob")
    names = deployment.names
    personal = {"x-dead-letter-exchange": names.dead_exchange, "x-single-active-consumer": True}

    async def queue(channel: AbstractChannel, name: str, **kwargs: Any) -> None:
        await channel.declare_queue(name, **kwargs)

    async def exchange(channel: AbstractChannel, name: str, kind: str) -> None:
        await channel.declare_exchange(name, aio_pika.ExchangeType(kind), durable=True)

    # The documented declarations are accepted as equivalent ...
    for name in (names.inbox_queue("bob"), names.receipts_queue("bob")):
        assert not await _redeclare_fails(raw, queue, name, durable=True, arguments=personal)
    assert not await _redeclare_fails(raw, queue, names.dead_letters_queue, durable=True)
    assert not await _redeclare_fails(
        raw, queue, names.directory_stream, durable=True, arguments={"x-queue-type": "stream"}
    )
    assert not await _redeclare_fails(raw, exchange, names.messages_exchange, "topic")
    assert not await _redeclare_fails(raw, exchange, names.dead_exchange, "fanout")

    # ... and anything else is refused, so the arguments really are these.
    inbox = names.inbox_queue("bob")
    assert await _redeclare_fails(
        raw, queue, inbox, durable=True, arguments={"x-dead-letter-exchange": names.dead_exchange}
    )
    assert await _redeclare_fails(
        raw, queue, inbox, durable=True, arguments={**personal, "x-dead-letter-exchange": "x"}
    )
    assert await _redeclare_fails(raw, queue, inbox, durable=False, arguments=personal)
    assert await _redeclare_fails(raw, queue, names.dead_letters_queue, durable=False)
    assert await _redeclare_fails(raw, queue, names.directory_stream, durable=True)
    assert await _redeclare_fails(raw, exchange, names.messages_exchange, "direct")
    assert await _redeclare_fails(raw, exchange, names.dead_exchange, "topic")


async def test_queues_are_bound_with_the_documented_routing_keys(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    bob = await deployment.client("bob")
    await bob.create_group("team")
    await bob.stop()
    names = deployment.names
    channel = await raw.channel(publisher_confirms=True, on_return_raises=True)
    messages = await channel.get_exchange(names.messages_exchange)
    dead = await channel.get_exchange(names.dead_exchange)
    for key in ("user.bob", "group.team", "receipt.bob"):
        await messages.publish(aio_pika.Message(b"{}"), routing_key=key, mandatory=True)
    await dead.publish(aio_pika.Message(b"{}"), routing_key="anything", mandatory=True)
    # Nothing is bound to another user's key.
    with pytest.raises(aio_pika.exceptions.PublishError):
        await messages.publish(aio_pika.Message(b"{}"), routing_key="user.carol", mandatory=True)
    await eventually(
        lambda: _depths_are(
            raw,
            {
                names.inbox_queue("bob"): 2,
                names.receipts_queue("bob"): 1,
                names.dead_letters_queue: 1,
            },
        ),
        what="each queue to hold what its bindings route to it",
    )


async def _depths_are(connection: AbstractRobustConnection, expected: dict[str, int]) -> bool:
    return {name: await queue_depth(connection, name) for name in expected} == expected


async def test_directory_stream_keeps_registered_created_joined_and_left(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    alice = await deployment.client("alice")
    await eventually(lambda: knows(alice, "alice"), what="alice's registration")
    bob = await deployment.client("bob")
    await alice.create_group("team")
    await eventually(lambda: has_group(bob, "team"), what="bob to see the group")
    await bob.join_group("team")
    await bob.leave_group("team")
    await bob.flush(10)
    await alice.flush(10)
    # A client restarted on the same cache does not register again.
    await alice.stop()
    alice = await deployment.client("alice")
    await alice.flush(10)

    entries = await read_directory_stream(raw, deployment)
    events = []
    for entry in entries:
        body = json.loads(entry.body.decode("utf-8"))
        assert set(body) == DIRECTORY_KEYS
        assert entry.type == "DIRECTORY_EVENT" and entry.content_type == "application/json"
        utc_iso(body["timestamp"])
        events.append((body["event"], body["user_id"], body["group_id"]))
    assert events == [
        ("registered", "alice", None),
        ("registered", "bob", None),
        ("created", "alice", "team"),
        ("joined", "alice", "team"),
        ("joined", "bob", "team"),
        ("left", "bob", "team"),
    ]
