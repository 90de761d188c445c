"""Protocol version 2 is ready to grow: a well-formed message of a type a receiver does
not know is acked, counted and ignored, in the inbox, the receipts queue and the
directory, so that a later version can add types without older clients throwing them
away. Malformed bodies are still dead-lettered. On the memory broker: fast."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import MalformedMessageError, UnknownMessage, decode
from chat_tui.protocol.names import directory_user_key, receipt_key, user_key
from tests.conftest import eventually
from tests.test_sender_checks import AccountsWorld, chat, directory_event, sink_of


def reaction(**changes: Any) -> dict[str, Any]:
    """What a later version might add: a reaction to a message."""
    body: dict[str, Any] = {
        "type": "REACTION",
        "protocol_version": 3,
        "message_id": "2b7e1516-28ae-4d2a-a6d2-abf715880915",
        "emoji": "+1",
    }
    body.update(changes)
    return body


def encoded(body: Any) -> bytes:
    return json.dumps(body).encode("utf-8")


@pytest.fixture(params=[True, False], ids=["accounts", "open"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AccountsWorld]:
    made = AccountsWorld(tmp_path, accounts=request.param)
    yield made
    await made.close()


def _login(world: AccountsWorld, user: str) -> str:
    return user if world.accounts else "guest"


def _nothing_unacked(world: AccountsWorld, queue_name: str) -> bool:
    queue = world.broker.queues[queue_name]
    return not queue.ready and all(not c.channel.unacked for c in queue.consumers)


# --- the envelope rule ------------------------------------------------------------------


def test_a_later_versions_type_decodes_as_unknown() -> None:
    assert decode(encoded(reaction())) == UnknownMessage("REACTION", 3)
    assert decode(encoded(reaction(type="TYPING", protocol_version=2))) == UnknownMessage(
        "TYPING", 2
    )


@pytest.mark.parametrize(
    "body",
    [
        encoded({k: v for k, v in reaction().items() if k != "protocol_version"}),
        encoded(reaction(protocol_version=1)),
        encoded(reaction(protocol_version="3")),
        encoded(reaction(protocol_version=True)),
        encoded(reaction(protocol_version=2.5)),
        encoded(reaction(type="reaction")),
        encoded(reaction(type="")),
        encoded(reaction(type="R" * 65)),
        encoded(reaction(type=7)),
        encoded([reaction()]),
        encoded(reaction(padding="p" * 70000)),
        # A known type is held to its schema, whatever version it claims.
        encoded(chat(sender_id="alice", protocol_version=3)),
    ],
    ids=[
        "no-version",
        "version-1",
        "version-a-string",
        "version-a-bool",
        "version-not-whole",
        "lower-case-type",
        "empty-type",
        "type-too-long",
        "type-not-a-string",
        "a-list",
        "body-too-long",
        "known-type-broken",
    ],
)
def test_a_body_outside_the_envelope_rule_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        decode(body)


# --- the three receivers ----------------------------------------------------------------


async def test_the_inbox_acks_and_counts_an_unknown_type_and_carries_on(
    world: AccountsWorld,
) -> None:
    bob = await world.client("bob")
    alice = await world.client("alice")
    later = reaction()
    world.publish_raw(user_key("bob"), later, user_id=_login(world, "alice"))
    await eventually(lambda: bob.inbox.counters.unknown_types == 1, what="counted")
    inbox = world.names.inbox_queue("bob")
    await eventually(lambda: _nothing_unacked(world, inbox), what="the lone one acked")
    sent = await alice.send(Conversation.dm("bob"), "after the reaction")
    world.publish_raw(user_key("bob"), reaction(type="TYPING"), user_id=_login(world, "alice"))
    await eventually(lambda: sink_of(bob).contents() == ["after the reaction"], what="shown")
    await eventually(lambda: bob.inbox.counters.unknown_types == 2, what="the second counted")
    await eventually(lambda: _nothing_unacked(world, inbox), what="all acked")
    assert bob.inbox.counters.rejected == 0
    assert world.dead_letters() == []
    assert [m.message_id for m in sink_of(bob).shown] == [sent.message_id]


async def test_a_batch_that_begins_with_an_unknown_type_is_acked_whole(
    world: AccountsWorld,
) -> None:
    bob = await world.client("bob")
    await world.client("alice")
    # Delivered together, so they make one batch: the unknown one has the lower tag.
    world.publish_raw(user_key("bob"), reaction(), user_id=_login(world, "alice"))
    world.publish_raw(
        user_key("bob"), chat(sender_id="alice", recipient_id="bob"), user_id=_login(world, "alice")
    )
    await eventually(lambda: sink_of(bob).contents() == ["a message"], what="shown")
    inbox = world.names.inbox_queue("bob")
    # An ack(multiple) through the unknown one alone would leave the chat message
    # unacked until some later batch.
    await eventually(lambda: _nothing_unacked(world, inbox), what="both acked")


async def test_an_unknown_type_without_a_version_is_still_dead_lettered(
    world: AccountsWorld,
) -> None:
    bob = await world.client("bob")
    mistaken = chat(type="SHOUT_MESSAGE", sender_id="alice", recipient_id="bob")
    world.publish_raw(user_key("bob"), mistaken, user_id=_login(world, "alice"))
    await eventually(lambda: bob.inbox.counters.rejected == 1, what="dead-lettered")
    assert bob.inbox.counters.unknown_types == 0
    assert world.dead_letters() == [mistaken]


async def test_the_receipts_queue_acks_and_counts_an_unknown_type(world: AccountsWorld) -> None:
    alice = await world.client("alice")
    world.publish_raw(receipt_key("alice"), reaction(), user_id=_login(world, "bob"))
    await eventually(lambda: alice.receipts.unknown_types == 1, what="counted")
    receipts = world.names.receipts_queue("alice")
    await eventually(lambda: _nothing_unacked(world, receipts), what="acked")
    assert alice.receipts.rejected == 0
    assert alice.receipts.unverified == 0
    assert world.dead_letters() == []


async def test_the_directory_skips_and_counts_an_unknown_type(world: AccountsWorld) -> None:
    alice = await world.client("alice")
    world.publish_raw(directory_user_key("bob"), reaction(), user_id=_login(world, "bob"))
    world.publish_raw(
        directory_user_key("bob"),
        directory_event("registered", "bob"),
        user_id=_login(world, "bob"),
    )
    await eventually(lambda: _knows(alice, "bob"), what="the next entry folded")
    assert alice.directory.unknown_types == 1
    assert alice.directory.invalid == 0


async def _knows(client: ChatClient, user: str) -> bool:
    return user in await client.store.users()
