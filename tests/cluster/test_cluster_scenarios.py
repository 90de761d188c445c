"""The cluster scenarios of issue 11, with quorum queues, through the fault suite's
checker: nothing lost, nothing shown twice, nothing unexpected, and the failover time of
each in the table.

In scenarios 1 and 5 every client is given the whole cluster, its own node first, and
moves to the next node when its own dies. In 2 and 3 every client is on a node that
stays up; in the rolling restart (4) each waits for its own node to come back.
"""

from __future__ import annotations

import time
from functools import partial

import pytest

from chat_tui.protocol.names import Names
from tests.cluster.cluster import SIZE
from tests.cluster.world import ClusterWorld, printed_ids
from tests.faults.world import (
    GROUP,
    Run,
    queue_state,
    start_traffic,
    wait_drained,
    wait_for,
    wait_sending,
)

pytestmark = pytest.mark.timeout(300)

USERS = ["ann", "bob", "cyd"]
NEWCOMER = "dan"


def deliveries(users: int, count: int) -> int:
    """What `start_traffic` delivers: each user's COUNT messages alternate the group (every
    other member gets one) and a DM (one recipient)."""
    return users * (count // 2 * (users - 1) + (count - count // 2))


def other_nodes(index: int) -> list[int]:
    return [i for i in range(SIZE) if i != index]


def wait_flowing(world: ClusterWorld, recipient: str, senders: list[Run], timeout: float) -> float:
    """Seconds until RECIPIENT's tail shows a message that no sender had sent yet when this
    was called: the moment messages flow again after a fault."""
    began = time.monotonic()
    before = printed_ids(senders)
    tails = [r for r in world.runs if r.user == recipient and r.role == "tail"]
    wait_for(lambda: bool(printed_ids(tails) - before), timeout, f"{recipient} to get new messages")
    return time.monotonic() - began


def has_consumer(port: int, queue: str) -> bool:
    return queue_state(port, queue).consumers > 0


def wait_consuming_again(world: ClusterWorld, restarted: int) -> None:
    """Every tail of a user homed on node RESTARTED consumes its inbox again, as another
    node sees it."""
    witness = (restarted + 1) % SIZE
    world.ask_through(witness)
    for user in [u for u, home in world.homes.items() if home == restarted]:
        wait_for(
            partial(has_consumer, world.cluster.nodes[witness].port, world.inbox(user)),
            60,
            f"{user}'s tail to consume again after node {restarted} restarted",
            0.3,
        )


def keep_clear_of(world: ClusterWorld, queue: str, users: list[str]) -> int:
    """Home USERS on the nodes that do not lead QUEUE; return the one that does."""
    leader = world.cluster.leader_of(queue)
    world.place(users, other_nodes(leader))
    world.ask_through(other_nodes(leader)[0])
    return leader


def account(
    world: ClusterWorld,
    senders: list[Run],
    scenario: str,
    failover: float,
    expected: int,
    notes: tuple[str, ...] = (),
) -> None:
    """Wait for the senders to drain, then 0 lost, 0 duplicated, 0 unexpected, and every
    one of the EXPECTED deliveries made."""
    wait_drained(world, senders)
    result = world.settle_with(scenario, failover)
    result.notes.extend(notes)
    assert result.clean, result.details() + "\n" + world.describe()
    assert result.delivered == result.expected == expected


FAILOVER_GOAL = 5.0
"""Seconds from a node's death until its clients receive and send through another."""


def restored_elsewhere(world: ClusterWorld, run: Run, dead: int) -> bool:
    """Whether RUN's --verbose log says it is on a node other than DEAD: restored there,
    or connected afresh."""
    gone = world.cluster.url(dead).split("@")[-1]
    return any("RabbitMQ at" in line and gone not in line for line in run.errors().splitlines())


def wait_restored_elsewhere(world: ClusterWorld, run: Run, dead: int) -> None:
    """RUN's link says it is on a node other than DEAD. Its inbox may flow before: the
    restore ends with the directory stream, which may still be getting a new writer."""
    wait_for(
        lambda: restored_elsewhere(world, run, dead),
        30,
        f"{run.user}'s link to be restored on a node other than {dead}",
    )


def test_clients_move_to_another_node_when_theirs_is_killed_during_traffic(
    world: ClusterWorld,
) -> None:
    count = 80
    world.failover = True
    receiver, sender_on_it = "bob", "ann"
    world.place([receiver, sender_on_it], [1])  # both die with node 1
    world.place(["cyd"], [2])
    world.make_group(GROUP, USERS)
    tails = {user: world.tail(user) for user in USERS}
    senders = start_traffic(world, USERS, count, 0.1)
    wait_sending(senders, at_least=5)
    began = time.monotonic()
    world.cluster.kill(1)
    receiving = time.monotonic() - began + wait_flowing(world, receiver, senders, 30)
    moved = [run for run in senders if run.user == sender_on_it]
    sending = time.monotonic() - began + wait_flowing(world, "cyd", moved, 30)
    failover = max(receiving, sending)
    assert failover < FAILOVER_GOAL, f"receiving after {receiving:.1f} s, sending {sending:.1f} s"
    wait_restored_elsewhere(world, tails[receiver], 1)
    note = f"receiver getting again after {receiving:.1f} s, sender sending {sending:.1f} s"
    account(
        world,
        senders,
        "1 receiver's node kill -9",
        failover,
        deliveries(len(USERS), count),
        (note,),
    )


def test_a_sender_whose_node_dies_before_the_confirms_delivers_each_once(
    world: ClusterWorld,
) -> None:
    world.failover = True
    count = 2000
    sender = "ann"
    world.place([sender], [1])
    world.place(["bob", "cyd"], [0, 2])
    world.make_group(GROUP, USERS)
    for user in USERS:
        world.tail(user)
    # No pause between messages: publishes are always in flight, waiting for confirms
    # that a quorum queue gives only once a majority has the message.
    senders = [world.sender(sender, group=[GROUP], count=count, interval=0.0)]
    wait_sending(senders, at_least=50)
    began = time.monotonic()
    world.cluster.kill(1)
    # Every message is stored (printed) long before it is published, so what tells that
    # the sender publishes again is its link coming back on another node.
    wait_for(
        lambda: restored_elsewhere(world, senders[0], 1),
        30,
        f"{sender}'s link to come back on another node",
    )
    failover = time.monotonic() - began
    assert failover < FAILOVER_GOAL
    account(world, senders, "5 sender's node kill -9 before confirms", failover, count * 2)
    retried = [line for line in senders[0].errors().splitlines() if "publishes to retry" in line]
    assert retried, "no publish was waiting for its confirm when the node died"


def test_receiver_gets_messages_on_when_the_node_leading_its_inbox_is_killed(
    world: ClusterWorld,
) -> None:
    count = 60
    world.make_group(GROUP, USERS)  # on node 0: the inboxes are led from there
    receiver = "bob"
    # Every client on the two other nodes: only the inbox's leader goes.
    leader = keep_clear_of(world, world.inbox(receiver), USERS)
    for user in USERS:
        world.tail(user)
    senders = start_traffic(world, USERS, count, 0.1)
    wait_sending(senders, at_least=5)
    began = time.monotonic()
    world.cluster.kill(leader)
    failover = time.monotonic() - began + wait_flowing(world, receiver, senders, 30)
    assert world.cluster.leader_of(world.inbox(receiver)) != leader
    account(world, senders, "2 inbox leader kill -9", failover, deliveries(len(USERS), count))


def test_new_client_starts_and_chats_when_the_dead_letter_queues_node_is_killed(
    world: ClusterWorld,
) -> None:
    count = 20
    world.make_group(GROUP, USERS)  # the first client declares NS.dead-letters
    everyone = [*USERS, NEWCOMER]
    leader = keep_clear_of(world, Names(world.namespace).dead_letters_queue, everyone)
    for user in USERS:
        world.tail(user)
    began = time.monotonic()
    world.cluster.kill(leader)
    # A classic NS.dead-letters on the dead node kept every new client from starting.
    joined = world.cli(NEWCOMER, "join", GROUP)
    failover = time.monotonic() - began
    assert joined.returncode == 0, joined.stderr
    world.members[GROUP].append(NEWCOMER)
    world.tail(NEWCOMER)
    senders = start_traffic(world, everyone, count, 0.05)
    scenario = "3 dead-letter leader kill -9, new client"
    account(world, senders, scenario, failover, deliveries(len(everyone), count))


def test_rolling_restart_of_all_three_nodes_during_traffic_loses_nothing(
    world: ClusterWorld,
) -> None:
    count = 120  # at 0.4 s, longer than the three restarts take here (about 40 s)
    world.place(USERS, range(SIZE))  # one user per node
    world.make_group(GROUP, USERS)
    for user in USERS:
        world.tail(user)
    senders = start_traffic(world, USERS, count, 0.4)
    wait_sending(senders, at_least=5)
    outages: list[float] = []
    for index in range(SIZE):
        sending = sum(run.alive for run in senders)
        assert sending == len(senders), f"only {sending} senders left as node {index} restarts"
        began = time.monotonic()
        world.cluster.stop_node(index)
        world.cluster.start_node(index)
        wait_consuming_again(world, index)
        outages.append(time.monotonic() - began)
    restarts = ", ".join(f"node {i} {took:.1f} s" for i, took in enumerate(outages))
    note = f"node restarts, stop to its client consuming again: {restarts}"
    account(
        world,
        senders,
        "4 rolling restart",
        max(outages),
        deliveries(len(USERS), count),
        (note,),
    )
