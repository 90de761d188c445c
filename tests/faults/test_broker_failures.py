"""Scenarios 1 and 2: the broker dies (kill -9) or restarts cleanly in the middle of the
traffic of 5 senders to a 5-member group and to DMs. Nothing is lost or duplicated."""

from __future__ import annotations

import time

import pytest

from tests.faults.world import GROUP, USERS, ChatWorld, start_traffic, wait_drained, wait_sending

pytestmark = pytest.mark.timeout(300)

COUNT = 40
INTERVAL = 0.08


def _traffic_through(world: ChatWorld, fault: str, outage: float) -> None:
    world.make_group(GROUP, USERS)
    for user in USERS:
        world.tail(user)
    senders = start_traffic(world, USERS, COUNT, INTERVAL)
    # Let some traffic through, then take the broker away in the middle of it.
    wait_sending(senders, at_least=5)
    if fault == "kill":
        world.node.kill()
    else:
        world.node.stop()
    time.sleep(outage)
    world.node.start()
    wait_drained(world, senders)
    result = world.settle(f"{'1 broker kill -9' if fault == 'kill' else '2 broker restart'}")
    assert result.clean, result.details() + "\n" + world.describe()
    assert result.delivered == result.expected == COUNT * len(USERS) // 2 * (len(USERS))


def test_broker_killed_mid_traffic_loses_nothing(world: ChatWorld) -> None:
    _traffic_through(world, "kill", outage=1.0)


def test_broker_restarted_cleanly_mid_traffic_loses_nothing(world: ChatWorld) -> None:
    _traffic_through(world, "stop", outage=1.0)
