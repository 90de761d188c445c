"""The archive requests survive a lost link: a private node behind a proxy that cuts
the client off (tests/faults), the archive connected to the node directly. While the
link is down a request fails at once and the cached hits still come; once the client
is back, it consumes direct reply-to again on the new connection and the archive answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chat_tui.core.errors import ArchiveUnavailableError
from chat_tui.protocol.conversations import Conversation
from tests.conftest import Deployment, eventually
from tests.faults.broker_node import BrokerNode
from tests.faults.conftest import node, proxy  # noqa: F401  (the fault suite's fixtures)
from tests.faults.fault_proxy import FaultProxy
from tests.history.conftest import HistorySink, RunningArchive, texts

pytestmark = pytest.mark.broker

LOBBY = Conversation.group("lobby")


@pytest.fixture
async def on_node(
    node: BrokerNode,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Deployment]:
    deployment = Deployment(node.url, tmp_path)
    yield deployment
    await deployment.cleanup()


async def test_archive_requests_work_again_after_the_link_came_back(
    on_node: Deployment,
    proxy: FaultProxy,  # noqa: F811
    tmp_path: Path,
) -> None:
    archive = RunningArchive(on_node, str(tmp_path / "archive.sqlite3"))
    await archive.start()
    try:
        sink = HistorySink()
        alice = await on_node.client("alice", sink, amqp_url=proxy.url(), heartbeat=2)
        await alice.create_group("lobby")
        for line in ("before the cut", "older news"):
            await alice.wait_sent((await alice.send(LOBBY, line)).message_id, timeout=10)

        async def archived() -> bool:
            return len((await alice.history.archive.search("before", None, 5)).hits) == 1

        await eventually(archived, timeout=15, what="the archive to hold alice's message")

        proxy.partition()
        await eventually(lambda: not alice.online, timeout=15, what="alice to notice the cut")
        started = asyncio.get_running_loop().time()
        cut_off = await alice.history.search("before")
        assert cut_off.archive == "unavailable"
        assert [h.content for h in cut_off.hits] == ["before the cut"]  # from the cache
        with pytest.raises(ArchiveUnavailableError):
            await alice.history.load_older(LOBBY)
        assert asyncio.get_running_loop().time() - started < 3  # no timeouts waited out
        assert sink.archive_notices == []  # offline is not "no archive here"

        proxy.heal()
        assert await alice.wait_online(30)
        back = await alice.history.search("news")
        assert back.archive == "answered" and [h.content for h in back.hits] == ["older news"]
        # A second device of alice's, to see the archive's pages arrive over a new link.
        await alice.stop()
        on_node.clients.remove(alice)
        laptop = await on_node.client(
            "alice", HistorySink(), amqp_url=proxy.url(), data_dir=tmp_path / "laptop"
        )

        async def filled() -> bool:
            return texts(await laptop.cache.history(LOBBY)) == ["before the cut", "older news"]

        await eventually(filled, timeout=20, what="the laptop's backfill")
    finally:
        for client in on_node.clients:
            await client.stop()
        on_node.clients.clear()
        await archive.stop()
