"""Groups: create, join, leave, list; membership decides who gets a group's messages."""

from __future__ import annotations

import pytest
from aio_pika.abc import AbstractRobustConnection

from chat_tui.core.client import ChatClient
from chat_tui.core.errors import InvalidInputError, NotAMemberError, UnknownGroupError
from chat_tui.protocol.conversations import Conversation
from tests.conftest import Deployment, RecordingSink, eventually, has_group, members_are
from tests.test_wire_format import RawSpy


async def test_creating_a_group_announces_created_then_joined(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    alice = await deployment.client("alice")
    spy = await RawSpy.start(raw, deployment, "directory.group.*")
    await alice.create_group("team")
    await eventually(lambda: len(spy.messages) == 2, what="two directory events")
    assert [(b["event"], b["user_id"], b["group_id"]) for b in spy.bodies()] == [
        ("created", "alice", "team"),
        ("joined", "alice", "team"),
    ]
    assert await alice.my_groups() == ["team"]
    assert await alice.members("team") == ["alice"]


async def test_joining_starts_delivery_and_leaving_stops_it(deployment: Deployment) -> None:
    bob_sink = RecordingSink()
    alice = await deployment.client("alice")
    bob = await deployment.client("bob", bob_sink)
    await alice.create_group("team")
    team = Conversation.group("team")

    # alice's messages are published in order on one channel into bob's one inbox, so a
    # group message bob should not get would show up before the next DM.
    await alice.send(team, "before bob joined")
    await alice.flush(10)
    await eventually(lambda: has_group(bob, "team"), what="bob to see the group")
    await bob.join_group("team")
    await alice.send(team, "after bob joined")
    await eventually(lambda: bob_sink.contents() == ["after bob joined"], what="the first one")

    await bob.leave_group("team")
    await alice.send(team, "after bob left")
    await eventually(lambda: members_are(alice, "team", "alice"), what="alice to see bob leave")
    await alice.send(Conversation.dm("bob"), "still here?")
    await eventually(
        lambda: bob_sink.contents() == ["after bob joined", "still here?"],
        what="the DM, and nothing from the group after leaving",
    )
    assert await bob.my_groups() == []
    assert await bob.store.message_count(team) == 1


async def test_groups_and_members_are_listed_from_the_directory(deployment: Deployment) -> None:
    alice = await deployment.client("alice")
    bob = await deployment.client("bob")
    await alice.create_group("team")
    await alice.create_group("ops")
    await eventually(lambda: has_group(bob, "team"), what="bob to see the groups")
    await bob.join_group("team")
    await eventually(lambda: members_are(alice, "team", "alice", "bob"), what="bob's join")

    assert await alice.my_groups() == ["ops", "team"]
    assert await bob.my_groups() == ["team"]
    assert await bob.store.groups() == ["ops", "team"]
    assert await bob.members("ops") == ["alice"]
    assert await alice.members("#team") == ["alice", "bob"]
    assert await bob.store.groups_of("alice") == ["ops", "team"]

    # A late starter folds the same state from the directory stream.
    carol = await deployment.client("carol")
    await eventually(lambda: members_are(carol, "team", "alice", "bob"), what="carol's fold")
    assert await carol.store.groups() == ["ops", "team"]
    assert await carol.my_groups() == []

    await bob.leave_group("team")
    await eventually(lambda: members_are(carol, "team", "alice"), what="carol to see bob leave")


async def test_unknown_groups_and_non_members_get_clear_errors(deployment: Deployment) -> None:
    alice = await deployment.client("alice")
    bob = await deployment.client("bob")
    await alice.create_group("team")
    await eventually(lambda: has_group(bob, "team"), what="bob to see the group")

    with pytest.raises(UnknownGroupError, match="unknown group 'nope'"):
        await bob.join_group("nope")
    with pytest.raises(UnknownGroupError, match="unknown group 'nope'"):
        await bob.members("nope")
    with pytest.raises(UnknownGroupError, match="unknown group 'nope'"):
        await bob.send(Conversation.group("nope"), "hello?")
    with pytest.raises(UnknownGroupError, match="unknown group 'nope'"):
        await bob.leave_group("nope")
    with pytest.raises(NotAMemberError, match="join it first"):
        await bob.send(Conversation.group("team"), "let me in")
    with pytest.raises(NotAMemberError):
        await bob.leave_group("team")
    with pytest.raises(InvalidInputError, match="already exists"):
        await bob.create_group("team")
    with pytest.raises(InvalidInputError, match="invalid group ID"):
        await bob.create_group("Not.Valid")
    assert await bob.store.outbox_size() == 0
    assert await bob.store.groups() == ["team"]


async def test_wait_directory_returns_once_the_directory_is_read(deployment: Deployment) -> None:
    alice = await deployment.client("alice")
    await alice.create_group("team")
    assert await alice.flush(10)
    # What a face does at start-up: start, then wait for the directory before showing it.
    carol = ChatClient(deployment.settings("carol"), RecordingSink())
    deployment.clients.append(carol)
    await carol.start()
    assert await carol.wait_directory(10)
    assert await carol.store.groups() == ["team"]
    assert "alice" in await carol.store.users()
    assert await carol.members("team") == ["alice"]
