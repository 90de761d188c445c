"""The archive worker's life: SIGTERM in the middle of a backlog stops it cleanly,
retention purges what is older than `archive_retention_days` when it starts, and a
worker started before its database waits for it (and still stops when told to)."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.archive.pg_server import PrivateServer
from tests.archive.service_world import ArchiveWorld, archive_world, chat, spaced
from tests.conftest import eventually

BACKLOG = 5000


async def test_sigterm_mid_backlog_stops_cleanly_and_leaves_the_rest_queued(
    world: ArchiveWorld,
) -> None:
    messages, process = await world.worker_process_in_a_backlog(BACKLOG)
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


async def test_a_worker_started_before_its_database_waits_for_it(
    amqp_url: str, tmp_path: Path
) -> None:
    server = PrivateServer()  # initialised, not started: nothing listens yet
    try:
        archive_db = f"{server.url}/postgres"
        async with archive_world(amqp_url, tmp_path, archive_db) as world:
            process = world.spawn_worker()
            await asyncio.sleep(2.0)
            assert process.poll() is None, world.log_of(0).read_text()
            await asyncio.to_thread(server.start)
            await eventually(
                lambda: world.consumers(world.names.archive_requests_queue, at_least=1),
                what="the worker to find its database and consume",
                timeout=30,
            )
            await world.send(spaced(20, "alice", "lobby"))
            await eventually(lambda: world.holds(20), what="the messages stored")
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 20) == 0
    finally:
        server.destroy()


async def test_a_worker_waiting_for_its_database_stops_on_sigterm(
    amqp_url: str, tmp_path: Path
) -> None:
    server = PrivateServer()  # never started
    try:
        async with archive_world(amqp_url, tmp_path, f"{server.url}/postgres") as world:
            process = world.spawn_worker()
            await asyncio.sleep(2.0)
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 10) == 0, world.log_of(0).read_text()
            assert "unavailable" in world.log_of(0).read_text()
    finally:
        server.destroy()
