"""Invalid deliveries are dead-lettered to NS.dead-letters, and the client carries on.

The bad messages are published with plain aio-pika straight at the queues, as a buggy
or hostile client would."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from tests.conftest import Deployment, RecordingSink, eventually, knows
from tests.test_wire_format import queue_depth


def now() -> str:
    return "2026-11-27T07:10:31.209798Z"


def chat(**changes: Any) -> dict[str, Any]:
    """A valid DM from alice to bob, with `changes` applied."""
    body: dict[str, Any] = {
        "type": "SEND_MESSAGE",
        "message_id": str(uuid.uuid4()),
        "sender_id": "alice",
        "group_id": None,
        "recipient_id": "bob",
        "content": "hello",
        "timestamp": now(),
    }
    body.update(changes)
    return body


def receipt(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "RECEIVE_MESSAGE",
        "recipient_id": "alice",
        "message_id": str(uuid.uuid4()),
        "status": "delivered",
        "timestamp": now(),
    }
    body.update(changes)
    return body


def encode(body: dict[str, Any] | list[Any]) -> bytes:
    return json.dumps(body).encode("utf-8")


# (what is wrong, body), each published to bob's inbox with routing key user.bob.
BAD_INBOX_MESSAGES: list[tuple[str, bytes]] = [
    ("not JSON", b"hello bob, this is not JSON"),
    ("not UTF-8", b'{"type": "SEND_MESSAGE", "content": "\xff\xfe"}'),
    ("a JSON array", encode([chat()])),
    # Receivers ignore unknown fields, so only the body limit is broken here.
    ("body over 64 KiB", encode(chat(padding="x" * (64 * 1024)))),
    ("content over 16 KiB", encode(chat(content="x" * (16 * 1024 + 1)))),
    ("empty content", encode(chat(content="  \n "))),
    ("content is a number", encode(chat(content=42))),
    ("message_id is not a UUID", encode(chat(message_id="12345"))),
    ("timestamp is not a time", encode(chat(timestamp="yesterday"))),
    ("missing sender_id", encode({k: v for k, v in chat().items() if k != "sender_id"})),
    ("both group and recipient", encode(chat(group_id="team"))),
    ("unknown type", encode(chat(type="SHOUT_MESSAGE"))),
    ("a receipt in an inbox", encode(receipt())),
    (
        "a directory event in an inbox",
        encode(
            {
                "type": "DIRECTORY_EVENT",
                "event": "registered",
                "user_id": "eve",
                "group_id": None,
                "timestamp": now(),
            }
        ),
    ),
    ("sender ID with a dot", encode(chat(sender_id="eve.evil"))),
    ("recipient ID with a dot", encode(chat(recipient_id="bob.x"))),
    ("upper-case sender ID", encode(chat(sender_id="Alice"))),
    ("a DM for someone else", encode(chat(recipient_id="carol"))),
    ("a group message routed as a DM", encode(chat(group_id="team", recipient_id=None))),
]


async def dead_letters(connection: AbstractRobustConnection, name: str) -> list[bytes]:
    """Take every message out of the dead-letters queue; check where each came from."""
    channel = await connection.channel()
    queue = await channel.declare_queue(name, passive=True)
    bodies: list[bytes] = []
    while True:
        message: AbstractIncomingMessage | None = await queue.get(no_ack=True, fail=False)
        if message is None:
            break
        deaths = message.headers.get("x-death")
        assert isinstance(deaths, list) and deaths, "a dead letter without x-death"
        death = deaths[0]
        assert isinstance(death, dict)
        assert death["reason"] == "rejected"
        bodies.append(message.body)
    await channel.close()
    return bodies


async def test_invalid_inbox_messages_are_dead_lettered_and_delivery_carries_on(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    bob_sink = RecordingSink()
    bob = await deployment.client("bob", bob_sink)
    names = deployment.names
    channel = await raw.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(names.messages_exchange)
    for _what, body in BAD_INBOX_MESSAGES:
        await exchange.publish(aio_pika.Message(body), routing_key="user.bob")
    # Straight into the queue through the default exchange: the routing key then is the
    # queue's name, which agrees with no body.
    straight = encode(chat())
    await channel.default_exchange.publish(
        aio_pika.Message(straight), routing_key=names.inbox_queue("bob")
    )
    good = chat(content="a good message after all that")
    await exchange.publish(aio_pika.Message(encode(good)), routing_key="user.bob")

    await eventually(
        lambda: bob_sink.contents() == ["a good message after all that"],
        what="the good message to get through",
    )
    assert bob_sink.shown[0].message_id == good["message_id"]
    bad_count = len(BAD_INBOX_MESSAGES) + 1
    assert bob.inbox is not None
    await eventually(lambda: bob.inbox.counters.rejected == bad_count, what="rejections")
    await eventually(
        lambda: _depth_is(raw, names.dead_letters_queue, bad_count), what="the dead letters"
    )
    dead = await dead_letters(raw, names.dead_letters_queue)
    assert sorted(dead) == sorted([body for _what, body in BAD_INBOX_MESSAGES] + [straight])
    assert await bob.store.message_count(Conversation.dm("alice")) == 1
    assert bob.online


async def _depth_is(connection: AbstractRobustConnection, name: str, wanted: int) -> bool:
    return await queue_depth(connection, name) == wanted


async def test_invalid_receipts_are_dead_lettered_and_receipts_carry_on(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    alice = await deployment.client("alice")
    bob = await deployment.client("bob")
    await eventually(lambda: knows(bob, "alice"), what="bob to know alice")
    names = deployment.names
    channel = await raw.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(names.messages_exchange)
    bad: list[bytes] = [
        b"\x00\x01 not JSON",
        b"\xc3\x28",
        encode(receipt(status="seen")),
        encode(receipt(message_id="not-a-uuid")),
        encode(receipt(recipient_id="alice.x")),
        encode(receipt(type="SEND_MESSAGE")),
        encode(chat(recipient_id="bob")),
        encode(receipt(padding="y" * (64 * 1024 + 1))),
    ]
    for body in bad:
        await exchange.publish(aio_pika.Message(body), routing_key="receipt.bob")
    straight = encode(receipt())
    await channel.default_exchange.publish(
        aio_pika.Message(straight), routing_key=names.receipts_queue("bob")
    )
    # A valid receipt about a message bob never sent is acked and ignored, not dead.
    await exchange.publish(aio_pika.Message(encode(receipt())), routing_key="receipt.bob")

    sent = await bob.send(Conversation.dm("alice"), "still getting receipts?")
    await eventually(lambda: _delivered(bob, sent.message_id), what="the real receipt")
    assert bob.receipts is not None
    await eventually(lambda: bob.receipts.rejected == len(bad) + 1, what="rejections")
    await eventually(
        lambda: _depth_is(raw, names.dead_letters_queue, len(bad) + 1), what="the dead letters"
    )
    assert sorted(await dead_letters(raw, names.dead_letters_queue)) == sorted([*bad, straight])
    assert alice.online and bob.online


async def _delivered(client: ChatClient, message_id: str) -> bool:
    message = await client.store.get_message(message_id)
    return message is not None and message.status == "delivered"
