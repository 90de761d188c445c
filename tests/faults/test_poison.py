"""Scenario 7: poison. 1,000 bad bodies go straight into inboxes and receipt queues,
interleaved with good messages, while real clients chat. Every bad one is dead-lettered,
every good one arrives, and no client crashes or stalls."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import aio_pika
import pytest

from tests.faults import checker
from tests.faults.world import (
    GROUP,
    USERS,
    ChatWorld,
    queue_state,
    start_traffic,
    wait_drained,
    wait_for,
)

pytestmark = pytest.mark.timeout(300)

PUBLISHED_KINDS: list[str] = []
BAD_TOTAL = 1000
GOOD_EVERY = 10
BIG_BODIES = 3
TEN_MB = 10 * 1024 * 1024


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _send(**fields: object) -> bytes:
    body: dict[str, object] = {
        "type": "SEND_MESSAGE",
        "message_id": str(uuid.uuid4()),
        "sender_id": "ann",
        "group_id": None,
        "recipient_id": "bob",
        "content": "poison",
        "timestamp": _now(),
    }
    body.update(fields)
    return json.dumps(body).encode()


def _receipt(**fields: object) -> bytes:
    body: dict[str, object] = {
        "type": "RECEIVE_MESSAGE",
        "recipient_id": "bob",
        "message_id": str(uuid.uuid4()),
        "status": "delivered",
        "timestamp": _now(),
    }
    body.update(fields)
    return json.dumps(body).encode()


# Each maker returns a bad body for (recipient user). They cover: not JSON, invalid
# UTF-8, wrong schema, wrong types, unknown type, IDs with routing characters, limits,
# and valid bodies in the wrong place.
BAD_BODIES: list[tuple[str, Callable[[str], bytes]]] = [
    ("not json", lambda u: b"this is not JSON {"),
    ("invalid utf-8", lambda u: b'{"type": "SEND_MESSAGE", "content": "\xff\xfe\xfa"}'),
    ("bare invalid utf-8", lambda u: b"\xc3\x28\xa0\xa1\xe2\x28\xa1"),
    ("empty body", lambda u: b""),
    ("json array", lambda u: b"[1, 2, 3]"),
    ("json null", lambda u: b"null"),
    ("json string", lambda u: b'"SEND_MESSAGE"'),
    ("missing fields", lambda u: json.dumps({"type": "SEND_MESSAGE"}).encode()),
    ("no type", lambda u: json.dumps({"message_id": str(uuid.uuid4())}).encode()),
    ("unknown type", lambda u: _send(type="DELETE_EVERYTHING", recipient_id=u)),
    ("content is a number", lambda u: _send(recipient_id=u, content=12345)),
    ("message_id is a number", lambda u: _send(recipient_id=u, message_id=42)),
    ("bad timestamp", lambda u: _send(recipient_id=u, timestamp="yesterday")),
    ("not a uuid", lambda u: _send(recipient_id=u, message_id="a.b.#")),
    ("sender with routing chars", lambda u: _send(recipient_id=u, sender_id="ann.#")),
    ("recipient with routing chars", lambda u: _send(recipient_id=f"{u}.*")),
    ("group with routing chars", lambda u: _send(recipient_id=None, group_id=f"{GROUP}.#")),
    ("both targets", lambda u: _send(recipient_id=u, group_id=GROUP)),
    ("no target", lambda u: _send(recipient_id=None, group_id=None)),
    ("blank content", lambda u: _send(recipient_id=u, content="   ")),
    ("content over 16 KiB", lambda u: _send(recipient_id=u, content="y" * (17 * 1024))),
    ("body over 64 KiB", lambda u: _send(recipient_id=u, content="z", pad="p" * 70_000)),
    ("a DM for someone else", lambda u: _send(recipient_id="nobody-else")),
    ("a receipt in an inbox", lambda u: _receipt()),
]
BAD_RECEIPTS: list[tuple[str, Callable[[str], bytes]]] = [
    ("receipt not json", lambda u: b"\x00\x01 not json"),
    ("receipt wrong status", lambda u: _receipt(status="eaten")),
    ("receipt with routing chars", lambda u: _receipt(recipient_id="bob.#")),
    ("receipt with bad id", lambda u: _receipt(message_id="*.#")),
    ("a chat message in a receipts queue", lambda u: _send(recipient_id=u)),
]


async def _publish_poison(world: ChatWorld, victims: list[str]) -> int:
    """Publish BAD_TOTAL bad bodies and one good DM every GOOD_EVERY; return the bad count."""
    names_prefix = world.namespace
    connection = await aio_pika.connect(world.node.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        messages = await channel.get_exchange(f"{names_prefix}.messages")
        kinds = itertools.cycle(BAD_BODIES + BAD_RECEIPTS)
        big_left = BIG_BODIES
        pending = []
        for number in range(BAD_TOTAL):
            victim = victims[number % len(victims)]
            name, make = next(kinds)
            body = make(victim)
            if big_left and number % 300 == 150:
                body, name, big_left = b"{" + b" " * TEN_MB + b"}", "10 MB body", big_left - 1
            into_receipts = (name, make) in BAD_RECEIPTS
            PUBLISHED_KINDS.append(name)
            queue = f"{names_prefix}.{'receipts' if into_receipts else 'inbox'}.{victim}"
            message = aio_pika.Message(body, message_id=str(uuid.uuid4()), type=name)
            if number % 2:
                # Straight into the queue, through the default exchange.
                pending.append(channel.default_exchange.publish(message, routing_key=queue))
            else:
                key = f"{'receipt' if into_receipts else 'user'}.{victim}"
                pending.append(messages.publish(message, routing_key=key))
            if number % GOOD_EVERY == 0:
                victim = victims[number // GOOD_EVERY % len(victims)]
                good_id = str(uuid.uuid4())
                text = f"good-between-poison:{number:04d}"
                body = _send(message_id=good_id, sender_id="ann", recipient_id=victim, content=text)
                good = aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=good_id,
                    type="SEND_MESSAGE",
                    app_id="chat-tui",
                )
                pending.append(messages.publish(good, routing_key=f"user.{victim}"))
                world.extra_sent.append(checker.Sent(good_id, "ann", f"dm:{victim}", text))
            if len(pending) >= 50:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    return BAD_TOTAL


async def _missing_dead_letters(world: ChatWorld) -> dict[str, int]:
    """Published minus dead-lettered, per kind of bad body (the AMQP `type` we set)."""
    published: Counter[str] = Counter(PUBLISHED_KINDS)
    connection = await aio_pika.connect(world.node.url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{world.namespace}.dead-letters", passive=True)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            published[message.type or "?"] -= 1
    return {kind: count for kind, count in published.items() if count}


def test_poison_is_dead_lettered_and_good_messages_still_arrive(world: ChatWorld) -> None:
    world.make_group(GROUP, USERS)
    tails = [world.tail(user) for user in USERS]
    senders = start_traffic(world, USERS, 20, 0.05)
    victims = [u for u in USERS if u != "ann"]
    bad = asyncio.run(_publish_poison(world, victims))
    wait_drained(world, senders)
    dead_letters = f"{world.namespace}.dead-letters"
    try:
        wait_for(
            lambda: queue_state(world.node.port, dead_letters).messages >= bad,
            60,
            f"{bad} dead letters",
            0.5,
        )
    except AssertionError:
        missing = asyncio.run(_missing_dead_letters(world))
        raise AssertionError(f"not dead-lettered, by kind: {missing}") from None
    for tail in tails:
        assert tail.alive, f"{tail.user}'s tail crashed:\n{tail.errors()[-3000:]}"
    result = world.settle("7 poison x1000")
    dead = queue_state(world.node.port, dead_letters).messages
    result.notes.append(f"{bad} bad bodies published, {dead} dead-lettered")
    assert dead == bad, f"{bad} bad bodies, {dead} dead letters"
    # Receipt queues keep real receipts for senders that have quit; inboxes must be empty.
    for user in USERS:
        inbox = f"{world.namespace}.inbox.{user}"
        left = queue_state(world.node.port, inbox).messages
        assert left == 0, f"{inbox} still holds {left} messages: a stalled consumer"
    assert result.clean, result.details() + "\n" + world.describe()
    assert (
        result.delivered
        == result.expected
        == 20 * len(USERS) // 2 * len(USERS) + len(world.extra_sent)
    )
