"""The archive's fault cases through the real broker: a worker killed -9 in the middle
of a backlog, two workers racing on the same messages, PostgreSQL restarted under load.
Each time nothing is lost and nothing is stored twice: the history, read straight from
the database, holds each message exactly once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from chat_tui.protocol.archive import ArchiveRefusal, HistoryPage, HistoryRequest
from tests.archive.pg_server import PrivateServer, fresh_database
from tests.archive.service_world import ArchiveWorld, archive_world, spaced
from tests.conftest import eventually

BACKLOG = 5000


async def test_a_worker_killed_mid_batch_loses_nothing_and_stores_nothing_twice(
    world: ArchiveWorld,
) -> None:
    messages, process = await world.worker_process_in_a_backlog(BACKLOG)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    at_kill = await world.stored()
    assert 0 < at_kill < BACKLOG, f"not killed mid-backlog: {at_kill} of {BACKLOG} stored"

    await world.start_worker()
    await eventually(lambda: world.holds(BACKLOG), what="the whole backlog stored", timeout=60)
    await eventually(world.drained, what="the queue drained")
    assert await world.contents("lobby") == [m.content for m in messages]


async def test_two_workers_racing_on_the_same_messages_store_each_once(
    world: ArchiveWorld,
) -> None:
    await world.start_worker()
    await world.start_worker()
    assert await world.consumers(world.names.archive_queue, at_least=2)
    messages = spaced(1500, "alice", "lobby")
    # Every message twice, the copies interleaved: each copy can go to either worker.
    await world.send([copy for message in messages for copy in (message, message)])
    await eventually(lambda: world.holds(len(messages)), what="every message stored", timeout=30)
    await eventually(world.drained, what="the queue drained")
    await world.stop_workers()
    assert await world.depth(world.names.archive_queue) == 0
    assert await world.contents("lobby") == [m.content for m in messages]


async def test_postgres_restarted_under_load_loses_nothing_and_workers_reconnect(
    amqp_url: str, tmp_path: Path, private_postgres: PrivateServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        fresh_database(private_postgres.url) as database_url,
        archive_world(amqp_url, tmp_path, database_url) as world,
    ):
        await world.start_worker()
        await world.start_worker()
        messages = spaced(3000, "alice", "lobby")
        sending = asyncio.create_task(world.send_in_chunks(messages, chunk=100, pause=0.02))

        async def some_stored() -> bool:
            return await world.stored() > 300

        await eventually(some_stored, what="the load under way", timeout=30)
        # Its cached handle goes down with the server; the workers' pools must recover
        # by themselves, ours is opened again afterwards.
        await world.forget_database()
        await asyncio.to_thread(private_postgres.crash)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(private_postgres.start)
        await sending
        await eventually(
            lambda: world.holds(len(messages)), what="every message stored", timeout=60
        )
        await eventually(world.drained, what="the queue drained")
        assert await world.contents("lobby") == [m.content for m in messages]
        assert await world.dead_letters() == []
        # The outage did reach the workers: they handed batches back, and came back.
        handed_back = [r for r in caplog.records if "handing them back" in r.getMessage()]
        assert handed_back, "no worker met the database down"


async def test_a_request_while_postgres_is_down_is_refused_unavailable_then_answered(
    amqp_url: str, tmp_path: Path, private_postgres: PrivateServer
) -> None:
    async with (
        fresh_database(private_postgres.url) as database_url,
        archive_world(amqp_url, tmp_path, database_url) as world,
    ):
        await world.register("alice")
        await world.join("lobby", "alice")
        await world.start_worker()
        await world.send(spaced(3, "alice", "lobby"))
        await eventually(lambda: world.holds(3), what="the messages stored")
        await world.forget_database()
        request = HistoryRequest(requester_id="alice", group_id="lobby")
        await asyncio.to_thread(private_postgres.crash)
        refused = await world.ask(request)
        assert isinstance(refused, ArchiveRefusal) and refused.reason == "unavailable"
        await asyncio.to_thread(private_postgres.start)

        async def answered() -> bool:
            page = await world.ask(request)
            return isinstance(page, HistoryPage) and len(page.messages) == 3

        await eventually(answered, what="a page once PostgreSQL is back", timeout=30)
