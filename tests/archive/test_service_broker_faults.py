"""The archive across a broker that dies: a private RabbitMQ node killed -9 under a
worker and started again on the same data. The worker reconnects by itself, stores what
came before and after, and stores nothing twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.archive.service_world import archive_world, spaced
from tests.conftest import eventually
from tests.faults.broker_node import BrokerNode, running_node

pytestmark = [pytest.mark.broker, pytest.mark.faults]

STREAM_SETTLED = 2.0
"""Seconds from the directory stream's declaration to the kill, at least."""


@pytest.fixture
def node() -> Iterator[BrokerNode]:
    with running_node() as broker:
        yield broker


async def test_a_worker_survives_its_broker_killed_and_restarted(
    node: BrokerNode, tmp_path: Path
) -> None:
    async with archive_world(node.url, tmp_path, str(tmp_path / "archive.sqlite3")) as world:
        await world.start_worker()
        declared = time.monotonic()
        before = spaced(2000, "alice", "lobby", text="before")
        await world.send(before)
        # RabbitMQ 3.10 loses a stream killed within about a second of its declaration,
        # for good (tests/faults/test_lost_stream.py): this test is about the worker.
        await asyncio.sleep(max(0.0, STREAM_SETTLED - (time.monotonic() - declared)))
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
