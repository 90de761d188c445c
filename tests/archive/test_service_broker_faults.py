"""The archive across a broker that dies: a private RabbitMQ node killed -9 under a
worker and started again on the same data. The worker reconnects by itself, stores what
came before and after, and stores nothing twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.archive.service_world import archive_world, spaced
from tests.conftest import eventually
from tests.faults.broker_node import BrokerNode

pytestmark = [pytest.mark.broker, pytest.mark.faults]


@pytest.fixture
def node() -> Iterator[BrokerNode]:
    broker = BrokerNode()
    try:
        broker.start()
        yield broker
    finally:
        broker.destroy()


async def test_a_worker_survives_its_broker_killed_and_restarted(
    node: BrokerNode, tmp_path: Path
) -> None:
    async with archive_world(node.url, tmp_path, str(tmp_path / "archive.sqlite3")) as world:
        await world.start_worker()
        before = spaced(2000, "alice", "lobby", text="before")
        await world.send(before)
        # -9 while the worker stores them (on a fast machine it may be done already: the
        # restart still has to be survived).
        await asyncio.to_thread(node.kill)
        await asyncio.to_thread(node.start)
        after = spaced(500, "bob", "lobby", text="after")

        async def sent_after() -> bool:
            try:
                await world.send(after)
            except Exception:  # still reconnecting
                return False
            return True

        await eventually(sent_after, what="the broker back for the test", timeout=60)
        everything = sorted(m.content for m in [*before, *after])
        await eventually(
            lambda: world.holds(len(everything)),
            what="the worker reconnected and storing",
            timeout=60,
        )
        assert sorted(await world.contents("lobby")) == everything
