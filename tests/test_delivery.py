"""Messages reach the people they are for: direct messages, groups, and the backlog of
someone who was offline."""

from __future__ import annotations

from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from tests.conftest import Deployment, RecordingSink, eventually, has_group, knows, members_are


async def group_of_three(deployment: Deployment) -> tuple[list[ChatClient], list[RecordingSink]]:
    """alice, bob and carol, all online and all members of #team, each knowing it."""
    sinks = [RecordingSink() for _ in range(3)]
    clients = [
        await deployment.client(user, sink)
        for user, sink in zip(("alice", "bob", "carol"), sinks, strict=True)
    ]
    alice, bob, carol = clients
    await alice.create_group("team")
    for member in (bob, carol):
        await eventually(lambda m=member: has_group(m, "team"), what="the group to be seen")
        await member.join_group("team")
    for client in clients:
        await eventually(
            lambda c=client: members_are(c, "team", "alice", "bob", "carol"),
            what=f"{client.me} to see all three members",
        )
    return clients, sinks


async def test_direct_messages_reach_the_recipient_both_ways(deployment: Deployment) -> None:
    alice_sink, bob_sink = RecordingSink(), RecordingSink()
    alice = await deployment.client("alice", alice_sink)
    bob = await deployment.client("bob", bob_sink)
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")

    sent = await alice.send(Conversation.dm("bob"), "hello bob")
    assert sent.status == "queued" and sent.outgoing
    await eventually(lambda: bob_sink.contents() == ["hello bob"], what="bob to get the DM")
    received = bob_sink.shown[0]
    assert received.message_id == sent.message_id
    assert received.sender_id == "alice"
    assert received.conversation == Conversation.dm("alice")
    assert not received.outgoing and received.status == "received"

    await bob.send(Conversation.dm("alice"), "hi alice")
    await eventually(lambda: alice_sink.contents() == ["hi alice"], what="alice to get the reply")
    alice_view = await alice.store.history(Conversation.dm("bob"))
    bob_view = await bob.store.history(Conversation.dm("alice"))
    assert [(m.sender_id, m.content) for m in alice_view] == [
        ("alice", "hello bob"),
        ("bob", "hi alice"),
    ]
    assert [(m.sender_id, m.content) for m in bob_view] == [
        ("alice", "hello bob"),
        ("bob", "hi alice"),
    ]


async def test_group_messages_reach_every_other_member_once(deployment: Deployment) -> None:
    (alice, bob, carol), (alice_sink, bob_sink, carol_sink) = await group_of_three(deployment)
    team = Conversation.group("team")

    await alice.send(team, "from alice")
    await eventually(
        lambda: bob_sink.contents() == carol_sink.contents() == ["from alice"],
        what="bob and carol to get alice's message",
    )
    await bob.send(team, "from bob")
    await eventually(
        lambda: (
            alice_sink.contents() == ["from bob"]
            and carol_sink.contents() == ["from alice", "from bob"]
        ),
        what="alice and carol to get bob's message",
    )
    # The sender's own copy (its inbox is bound to the group too) is not stored twice.
    await alice.flush(10)
    await eventually(
        lambda: alice.inbox is not None and alice.inbox.counters.duplicates >= 1,
        what="alice's own copy to come back and be recognised",
    )
    for client in (alice, bob, carol):
        history = await client.store.history(team)
        assert [(m.sender_id, m.content) for m in history] == [
            ("alice", "from alice"),
            ("bob", "from bob"),
        ]
    assert bob_sink.shown[0].conversation == team


async def test_direct_messages_stay_private_inside_a_group(deployment: Deployment) -> None:
    (alice, _bob, _carol), (_alice_sink, bob_sink, carol_sink) = await group_of_three(deployment)
    await alice.send(Conversation.dm("bob"), "just for bob")
    await alice.send(Conversation.group("team"), "for everyone")
    await eventually(
        lambda: bob_sink.contents() == ["just for bob", "for everyone"],
        what="bob to get both",
    )
    await eventually(lambda: carol_sink.contents() == ["for everyone"], what="carol's copy")


async def test_offline_user_gets_backlog_in_order(deployment: Deployment) -> None:
    (alice, bob, _carol), _sinks = await group_of_three(deployment)
    await bob.stop()

    expected_dm = [f"dm {i}" for i in range(20)]
    expected_group = [f"group {i}" for i in range(20)]
    for dm_text, group_text in zip(expected_dm, expected_group, strict=True):
        await alice.send(Conversation.dm("bob"), dm_text)
        await alice.send(Conversation.group("team"), group_text)
    assert await alice.flush(15), "alice's outbox did not drain"

    back_sink = RecordingSink()
    bob_again = await deployment.client("bob", back_sink)
    await eventually(lambda: len(back_sink.shown) == 40, what="bob's 40-message backlog")
    shown_dm = [m.content for m in back_sink.shown if m.conversation.kind == "dm"]
    shown_group = [m.content for m in back_sink.shown if m.conversation.kind == "group"]
    assert shown_dm == expected_dm
    assert shown_group == expected_group
    dm_history = await bob_again.store.history(Conversation.dm("alice"), limit=100)
    assert [m.content for m in dm_history] == expected_dm
    group_history = await bob_again.store.history(Conversation.group("team"), limit=100)
    assert [m.content for m in group_history] == expected_group


async def test_unread_counts_and_mentions_follow_incoming_messages(
    deployment: Deployment,
) -> None:
    (alice, bob, _carol), (_a, bob_sink, _c) = await group_of_three(deployment)
    await alice.send(Conversation.group("team"), "morning all")
    await alice.send(Conversation.group("team"), "@bob can you look at this?")
    await alice.send(Conversation.dm("bob"), "psst")
    await eventually(lambda: len(bob_sink.shown) == 3, what="bob to get three messages")

    summaries = {s.conversation: s for s in await bob.store.conversations()}
    team, dm = summaries[Conversation.group("team")], summaries[Conversation.dm("alice")]
    assert (team.unread_count, team.mentioned) == (2, True)
    assert (dm.unread_count, dm.mentioned) == (1, False)

    await bob.mark_read(Conversation.group("team"), team.last_seq)
    summaries = {s.conversation: s for s in await bob.store.conversations()}
    assert summaries[Conversation.group("team")].unread_count == 0
    assert summaries[Conversation.group("team")].mentioned is False
    assert summaries[Conversation.dm("alice")].unread_count == 1


async def test_a_second_client_of_the_same_user_waits_and_takes_over(
    deployment: Deployment,
) -> None:
    first_sink, second_sink = RecordingSink(), RecordingSink()
    alice = await deployment.client("alice")
    first = await deployment.client("bob", first_sink)
    assert await first.wait_first_attempt(10)  # consuming, not just connected
    # Another machine of bob's: its own cache, the same inbox.
    second = await deployment.client("bob", second_sink, data_dir=deployment.data_dir / "laptop")
    assert await second.wait_first_attempt(10)
    assert (first.status.standby, second.status.standby) == (False, True)
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")

    await alice.send(Conversation.dm("bob"), "to the active one")
    await eventually(lambda: first_sink.contents() == ["to the active one"], what="delivery")
    await first.stop()
    await alice.send(Conversation.dm("bob"), "to the one that took over")
    await eventually(
        lambda: second_sink.contents() == ["to the one that took over"], what="the take-over"
    )
    assert second.status.standby is False
