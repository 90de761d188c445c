"""The archive worker's life: SIGTERM in the middle of a backlog stops it cleanly, and
retention purges what is older than `archive_retention_days` when it starts."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime, timedelta

from tests.archive.service_world import ArchiveWorld, chat, spaced
from tests.conftest import eventually

BACKLOG = 5000


async def test_sigterm_mid_backlog_stops_cleanly_and_leaves_the_rest_queued(
    world: ArchiveWorld,
) -> None:
    first = await world.start_worker()
    await first.stop()
    messages = spaced(BACKLOG, "alice", "lobby")
    await world.send(messages)
    process = world.spawn_worker()

    async def under_way() -> bool:
        return await world.stored() > 0

    await eventually(under_way, what="the worker storing", timeout=30)
    process.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    returncode = await asyncio.to_thread(process.wait, 20)
    assert returncode == 0, world.log_of(0).read_text()
    assert time.monotonic() - asked < 15
    stored, queued = await world.stored(), await world.depth(world.names.archive_queue)
    assert stored < BACKLOG, "stopped only after the whole backlog"
    # Every message is stored, or back in the queue (a batch committed but not acked,
    # if any, is in both, and stored once more is still stored once).
    assert stored + queued >= BACKLOG

    await world.start_worker()
    await eventually(lambda: world.holds(BACKLOG), what="the rest stored", timeout=60)
    assert await world.contents("lobby") == [m.content for m in messages]


async def test_retention_purges_what_is_older_at_start(world: ArchiveWorld) -> None:
    worker = await world.start_worker()
    now = datetime.now(UTC)
    old = [
        chat("alice", group="lobby", content=f"old {n}", at=now - timedelta(days=3))
        for n in range(5)
    ]
    recent = [
        chat("alice", group="lobby", content=f"new {n}", at=now - timedelta(hours=n))
        for n in range(3)
    ]
    await world.send([*old, *recent])
    await eventually(lambda: world.holds(8), what="everything stored")
    await worker.stop()

    await world.start_worker(archive_retention_days=2)
    await eventually(lambda: world.holds(3), what="the old messages purged")
    assert sorted(await world.contents("lobby")) == ["new 0", "new 1", "new 2"]
