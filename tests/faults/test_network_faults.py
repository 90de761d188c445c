"""Scenarios 3 and 6: the network between the clients and the broker fails, through the
fault proxy. Clients notice, reconnect by themselves and resume; nothing is lost."""

from __future__ import annotations

import json
import time

import pytest

from tests.faults.world import (
    GROUP,
    USERS,
    ChatWorld,
    Run,
    start_traffic,
    wait_drained,
    wait_for,
    wait_sending,
)

pytestmark = pytest.mark.timeout(300)

CUT = 10.0


def _states(run: Run) -> list[str]:
    states = []
    for line in run.lines():
        obj = json.loads(line)
        if "state" in obj:
            states.append(obj["state"])
    return states


def test_network_cut_while_sending_and_while_receiving_heals_by_itself(
    world: ChatWorld,
) -> None:
    world.make_group(GROUP, USERS)
    tails = [world.tail(user) for user in USERS]

    # Cut 1, while sending: every client's link goes down for 10 s as they publish.
    senders = start_traffic(world, USERS, 30, 0.1, tag="a")
    wait_sending(senders)
    world.proxy.partition()
    time.sleep(CUT)
    world.proxy.heal()
    wait_drained(world, senders)

    # Cut 2, while receiving: the senders reach the broker directly; the receivers
    # pull a slowed-down stream through the proxy and lose their link in the middle.
    world.proxy.delay = 0.02
    senders = start_traffic(world, USERS, 30, 0.01, tag="b", url=world.node.url)
    wait_sending(senders, at_least=10)
    world.proxy.partition()
    time.sleep(CUT)
    world.proxy.heal()
    world.proxy.delay = 0.0
    wait_drained(world, senders)

    for tail in tails:
        assert tail.alive, f"{tail.user}'s tail died:\n{tail.errors()[-3000:]}"
    result = world.settle("3 network cut 2x10 s")
    assert result.clean, result.details() + "\n" + world.describe()
    assert result.delivered == result.expected == 2 * 30 * len(USERS) // 2 * len(USERS)
    assert all(
        len([r for r in world.runs if r.user == t.user and r.role == "tail"]) == 1 for t in tails
    )


def test_stalled_broker_is_detected_by_heartbeats_and_nothing_is_lost(world: ChatWorld) -> None:
    world.make_group(GROUP, USERS)
    tails = [world.tail(user) for user in USERS]
    senders = start_traffic(world, USERS, 40, 0.1)
    wait_sending(senders)
    # Nothing is closed: bytes simply stop flowing, as with a hung broker or a dead route.
    world.proxy.stall()
    # aiormq gives up on a link after 3 missed heartbeat intervals: (2 + 1) * 3 = 9 s.
    wait_for(
        lambda: all("reconnecting" in _states(run) for run in senders),
        30,
        "every sender to report that it is reconnecting",
        0.3,
    )
    wait_for(
        lambda: all("broker connection lost" in tail.errors() for tail in tails),
        30,
        "every tail to notice the stall",
        0.3,
    )
    world.proxy.heal()
    wait_drained(world, senders)
    for run in senders:
        states = _states(run)
        last_trouble = len(states) - 1 - states[::-1].index("reconnecting")
        assert "online" in states[last_trouble:], f"{run.user} did not come back: {states}"
    result = world.settle("6 broker stall")
    assert result.clean, result.details() + "\n" + world.describe()
    assert result.delivered == result.expected == 40 * len(USERS) // 2 * len(USERS)
