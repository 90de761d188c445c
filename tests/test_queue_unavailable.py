"""A broker that answers but cannot serve a queue of ours (its node is down, or RabbitMQ
lost it): the connector keeps trying, tells the user once what it is, and the header
says it while it lasts. tests/faults/test_lost_stream.py meets it on a real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from aiormq.exceptions import ChannelNotFoundEntity

from chat_tui.config import Settings
from chat_tui.core.archive_worker import ArchiveWorker
from chat_tui.core.connector import Connector
from chat_tui.core.status import ClientStatus, ConnectionState, StatusBoard
from chat_tui.protocol.names import Names
from chat_tui.transport.connection import InboxAtConnect, LinkState, LinkStatus, Transport
from chat_tui.transport.dialling import on_first_answering
from chat_tui.transport.errors import BrokerUnreachable, QueueUnavailable
from chat_tui.transport.link import BrokerLink
from chat_tui.transport.nodes import BrokerNodes
from chat_tui.tui.widgets.header import describe_status

LOST = QueueUnavailable(
    "RabbitMQ at amqp://a/ answered, but its queue 'ns.directory' ...", "ns.directory"
)


class FailingThenUp:
    """A link whose `connect` raises each of `failures` in turn, then succeeds."""

    def __init__(self, *failures: BrokerUnreachable) -> None:
        self.failures = list(failures)

    async def connect(self, connect_timeout: float = 5.0) -> InboxAtConnect:
        if self.failures:
            raise self.failures.pop(0)
        return InboxAtConnect(created=False, had_consumer=False)

    async def drop(self) -> None:
        pass


async def connect_through(
    link: FailingThenUp, *, set_up_failures: int = 0
) -> tuple[list[str], list[ClientStatus]]:
    """Connect through `link`; the first `set_up_failures` set-ups meet the queue down
    (a consume, after the declarations went through)."""
    told: list[str] = []
    shown: list[ClientStatus] = []
    board = StatusBoard(shown.append)
    failures = [LOST] * set_up_failures

    async def set_up(_inbox: InboxAtConnect) -> None:
        if failures:
            raise failures.pop()
        board.link_changed(LinkStatus(LinkState.ONLINE, node="a:5672"))
        board.consumers_ready()

    connector = Connector(
        cast(BrokerLink, cast(Any, link)), board, set_up, first_delay=0.01, tell_user=told.append
    )
    await connector.run()
    return told, shown


async def test_the_user_is_told_once_and_the_client_comes_online_when_the_queue_is_back() -> None:
    told, shown = await connect_through(FailingThenUp(LOST, LOST, LOST))
    assert told == [str(LOST)]
    offline = [s for s in shown if s.state is ConnectionState.OFFLINE]
    assert len(offline) == 3
    assert all(s.unavailable_queue == "ns.directory" and s.error == str(LOST) for s in offline)
    assert shown[-1].state is ConnectionState.ONLINE
    assert shown[-1].unavailable_queue is None


async def test_a_consume_that_meets_the_queue_down_is_the_same_as_a_declaration() -> None:
    told, shown = await connect_through(FailingThenUp(), set_up_failures=2)
    assert told == [str(LOST)]
    offline = [s for s in shown if s.state is ConnectionState.OFFLINE]
    assert [s.unavailable_queue for s in offline] == ["ns.directory", "ns.directory"]
    assert shown[-1].state is ConnectionState.ONLINE


async def test_a_broker_that_does_not_answer_is_not_a_queue_unavailable() -> None:
    told, shown = await connect_through(
        FailingThenUp(LOST, BrokerUnreachable("cannot reach RabbitMQ at amqp://a/"))
    )
    assert told == [str(LOST)]
    offline = [s for s in shown if s.state is ConnectionState.OFFLINE]
    assert [s.unavailable_queue for s in offline] == ["ns.directory", None]


def test_the_header_says_which_queue_while_it_is_unavailable() -> None:
    now = datetime.now(UTC)
    status = ClientStatus(
        ConnectionState.OFFLINE, error=str(LOST), unavailable_queue="ns.directory"
    )
    assert describe_status(status, now).plain == (
        "● offline · RabbitMQ answers, but its queue ns.directory is unavailable"
    )
    plain_offline = ClientStatus(ConnectionState.OFFLINE, error="cannot reach RabbitMQ")
    assert describe_status(plain_offline, now).plain == "● offline"


QUEUE_DOWN = (
    "NOT_FOUND - home node 'rabbit@b' of durable queue 't.inbox.alice' in vhost '/' is "
    "down or inaccessible"
)


async def test_a_cluster_whose_answering_node_has_the_queue_down_says_so() -> None:
    """The dead node's silence and the live node's answer: the answer is what to tell."""
    nodes = BrokerNodes(["amqp://alice@a/", "amqp://alice@b/"])
    failures: list[BrokerUnreachable] = [
        BrokerUnreachable("cannot reach RabbitMQ at amqp://alice@a/: refused"),
        LOST,
    ]

    async def attempt() -> None:
        raise failures.pop(0)

    try:
        await on_first_answering(nodes, attempt)
    except QueueUnavailable as exc:
        assert exc.queue == "ns.directory"
        assert str(exc).startswith("cannot reach any of the 2 RabbitMQ nodes: ")
        assert str(LOST) in str(exc)
    else:
        raise AssertionError("no QueueUnavailable")


async def test_a_restore_that_meets_a_queue_down_names_it_in_the_link_status() -> None:
    link = Transport("amqp://alice@127.0.0.1:1/", Names("t"), "alice")
    seen: list[LinkStatus] = []
    link.on_status = seen.append
    try:
        await link._on_lost(None, ChannelNotFoundEntity(404, QUEUE_DOWN))
    finally:
        await link.close()
    reconnecting = [s for s in seen if s.state is LinkState.RECONNECTING]
    assert reconnecting[-1].unavailable_queue == "t.inbox.alice"
    assert "answered, but its queue 't.inbox.alice' is unavailable" in (
        reconnecting[-1].error or ""
    )
    shown: list[ClientStatus] = []
    board = StatusBoard(shown.append)
    board.link_changed(reconnecting[-1])
    assert shown[-1].unavailable_queue == "t.inbox.alice"


async def test_an_archive_worker_whose_consume_meets_a_queue_down_sets_up_again(
    tmp_path: Path,
) -> None:
    settings = Settings(
        user="archivist",
        amqp_url="amqp://guest@127.0.0.1:1/",
        namespace="t",
        data_dir=tmp_path,
        reconnect_interval=0.01,
    )

    async def store(_messages: object) -> int:
        return 0

    async def answer(_request: object, _groups: object) -> Any:
        raise AssertionError("no request comes")

    worker = ArchiveWorker(settings, store, answer)
    calls: list[str] = []
    consume_failures = [LOST]

    async def connect(_timeout: float = 5.0) -> None:
        calls.append("connect")

    async def consume_directory(_handler: object) -> None:
        calls.append("consume directory")
        if consume_failures:
            raise consume_failures.pop()

    async def consume(_handler: object) -> None:
        calls.append("consume")

    async def drop() -> None:
        calls.append("drop")

    link = cast(Any, worker.link)
    link.connect, link.drop = connect, drop
    link.consume_directory, link.consume_archive, link.consume_requests = (
        consume_directory,
        consume,
        consume,
    )
    worker.follower.quiet = 0.01
    await worker.start()
    try:
        assert calls == [
            "connect",
            "consume directory",
            "drop",
            "connect",
            "consume directory",
            "consume",
            "consume",
        ]
    finally:
        for task in worker._tasks:
            task.cancel()
        await asyncio.gather(*worker._tasks, return_exceptions=True)
