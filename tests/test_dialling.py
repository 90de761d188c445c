"""What both links (the client's and the archive's) do alike in dialling their nodes
(transport/dialling.py): a probe that moves the reconnect round the nodes that are down
and stops at a refusal, and a connect whose failures while declaring are a refusal, or
"lost while setting up", with the connection closed either way."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity
from yarl import URL

from chat_tui.protocol.names import Names
from chat_tui.transport.dialling import open_on_node, watch_for_refusal
from chat_tui.transport.errors import (
    AuthenticationRefused,
    BrokerRefused,
    BrokerUnreachable,
    QueueUnavailable,
    SetupRefused,
    described,
)
from chat_tui.transport.nodes import BrokerNodes
from chat_tui.transport.refusals import ArchiveRefusals, ClientRefusals

NAMES = Names("dialling")
T = TypeVar("T")


def closed_port() -> int:
    """A loopback port nothing listens on: a node that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refusals_for(nodes: BrokerNodes, *, accounts_mode: bool = False) -> ClientRefusals:
    return ClientRefusals(nodes, NAMES, "alice", accounts_mode=accounts_mode, queue_type="classic")


async def probe(nodes: BrokerNodes, *still_lost: bool) -> tuple[BrokerRefused | None, list[int]]:
    """`watch_for_refusal` with a `still_lost` that says STILL_LOST in turn, then False;
    what it returned, and the node index at each of those questions."""
    asked: list[int] = []
    answers = list(still_lost)

    def lost() -> bool:
        asked.append(nodes.index)
        return answers.pop(0) if answers else False

    refusal = await watch_for_refusal(
        nodes,
        None,
        refusals_for(nodes),
        still_lost=lost,
        interval=0.01,
        connection_name="chat-tui:alice:probe",
    )
    return refusal, asked


def two_nodes_down() -> BrokerNodes:
    return BrokerNodes([f"amqp://alice:pw@127.0.0.1:{closed_port()}/" for _ in range(2)])


async def test_each_probe_that_finds_the_node_down_moves_the_reconnect_round_the_list() -> None:
    refusal, asked = await probe(two_nodes_down(), *[True] * 6)
    assert refusal is None
    # Asked after each sleep and after each failed probe: down, move on, down, move on.
    assert asked == [0, 0, 1, 1, 0, 0, 1]


async def test_a_probe_leaves_the_node_alone_once_the_link_is_back() -> None:
    nodes = two_nodes_down()
    refusal, asked = await probe(nodes, True, False)
    assert refusal is None
    assert nodes.index == 0 and asked == [0, 0, 0]


def with_password(amqp_url: str, password: str) -> str:
    return str(URL(amqp_url).with_password(password))


@pytest.mark.broker
async def test_a_probe_that_is_refused_the_login_returns_the_refusal(amqp_url: str) -> None:
    nodes = BrokerNodes([with_password(amqp_url, f"wrong-{uuid.uuid4().hex}")])
    refusal, _ = await probe(nodes, *[True] * 4)
    assert isinstance(refusal, AuthenticationRefused)
    assert f"refused the credentials of {nodes.login!r}" in str(refusal)


async def _no_callback(*_args: Any) -> None:
    return None


async def _on_lost(_sender: Any, _exc: BaseException | None) -> None:
    return None


async def open_declaring(
    amqp_url: str,
    declare: Callable[[AbstractRobustConnection], Awaitable[T]],
    *,
    accounts_mode: bool = False,
) -> tuple[AbstractRobustConnection, T]:
    nodes = BrokerNodes([amqp_url])
    return await open_on_node(
        nodes,
        refusals_for(nodes, accounts_mode=accounts_mode),
        declare,
        on_lost=_on_lost,
        on_restored=_no_callback,
        connection_name="chat-tui:dialling-test",
        heartbeat=10,
        reconnect_interval=1.0,
        timeout=5.0,
    )


async def _open_declaring_a_missing_queue(amqp_url: str, *, accounts_mode: bool) -> None:
    """open_on_node with a declaration that looks up a queue nobody declared: raises what
    it raises, once it has closed the connection it made."""
    opened: list[AbstractRobustConnection] = []

    async def declare(connection: AbstractRobustConnection) -> None:
        opened.append(connection)
        channel = await connection.channel()
        await channel.get_queue(f"dialling.missing.{uuid.uuid4().hex}", ensure=True)

    try:
        await open_declaring(amqp_url, declare, accounts_mode=accounts_mode)
    finally:
        assert opened and opened[0].is_closed


@pytest.mark.broker
async def test_an_object_missing_in_accounts_mode_is_a_refusal_and_the_connection_closed(
    amqp_url: str,
) -> None:
    with pytest.raises(
        SetupRefused, match=r"the broker has no queue 'dialling\.missing\..*'chat-tui admin init'"
    ):
        await _open_declaring_a_missing_queue(amqp_url, accounts_mode=True)


@pytest.mark.broker
async def test_an_object_missing_in_open_mode_is_lost_while_setting_up(amqp_url: str) -> None:
    with pytest.raises(BrokerUnreachable) as lost:
        await _open_declaring_a_missing_queue(amqp_url, accounts_mode=False)
    assert not isinstance(lost.value, SetupRefused)
    assert str(lost.value).startswith("lost RabbitMQ at amqp://guest@")
    assert "while setting up: NOT_FOUND - no queue 'dialling.missing." in str(lost.value)


QUEUE_DOWN = (
    "NOT_FOUND - home node 'rabbit@b' of durable queue 'dialling.inbox.alice' in vhost '/' "
    "is down or inaccessible"
)


@pytest.mark.broker
@pytest.mark.parametrize("accounts_mode", [False, True], ids=["open", "accounts"])
async def test_a_queue_whose_node_is_down_is_unavailable_not_missing(
    amqp_url: str, accounts_mode: bool
) -> None:
    """Not a refusal in accounts mode (an object missing), nor a broker gone: the broker
    answered, and the queue may come back with its node (tests/faults/test_lost_stream.py
    meets the real reply)."""

    async def declare(connection: AbstractRobustConnection) -> None:
        raise ChannelNotFoundEntity(404, QUEUE_DOWN)

    with pytest.raises(QueueUnavailable) as unavailable:
        await open_declaring(amqp_url, declare, accounts_mode=accounts_mode)
    assert unavailable.value.queue == "dialling.inbox.alice"
    text = str(unavailable.value)
    assert text.startswith("RabbitMQ at amqp://guest@")
    assert (
        "answered, but its queue 'dialling.inbox.alice' is unavailable: its node rabbit@b" in text
    )
    assert '"A queue RabbitMQ lost" in the README' in text


def test_neither_links_refusals_take_a_queue_whose_node_is_down_for_a_missing_object() -> None:
    """Declaring, consuming or restoring alike: in accounts mode a plain NOT_FOUND is a
    refusal, never retried; this one is a node that may come back."""
    down = ChannelNotFoundEntity(404, QUEUE_DOWN)
    missing = ChannelNotFoundEntity(404, "NOT_FOUND - no queue 'dialling.inbox.alice'")
    nodes = BrokerNodes(["amqp://alice@localhost/"])
    client = refusals_for(nodes, accounts_mode=True)
    archive = ArchiveRefusals(nodes, NAMES, accounts_mode=True, queue_type="classic")
    for refusals in (client, archive):
        assert refusals.setup_refusal(down) is None
        assert isinstance(refusals.setup_refusal(missing), SetupRefused)


@pytest.mark.broker
async def test_a_declared_link_comes_back_with_its_callbacks(amqp_url: str) -> None:
    async def declare(connection: AbstractRobustConnection) -> str:
        return "declared"

    connection, declared = await open_declaring(amqp_url, declare)
    try:
        assert declared == "declared"
        assert _on_lost in connection.close_callbacks
        assert _no_callback in connection.reconnect_callbacks
    finally:
        await connection.close()


def test_an_error_without_text_is_named_by_its_class() -> None:
    assert described(TimeoutError()) == "TimeoutError"
    assert described(ConnectionError("reset by peer")) == "reset by peer"
