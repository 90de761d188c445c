"""Dialling a link's nodes: what the client's link and the archive's do alike.

- `on_first_answering`: a first connect, tried on each node in turn until one answers;
  every failure in the one error when none does.
- `open_on_node`: the robust connection to the node `BrokerNodes` points at, with the
  link's declarations on it and its callbacks for a loss and a restore, or what the
  failure means (`Refusals`): a refusal, or `BrokerUnreachable` for the next node or a
  later attempt.
- `watch_for_refusal`: while aio-pika reconnects, a plain connection now and then with
  the same login. aio-pika 10.2 keeps a failed attempt's error to its own loop (it only
  logs it), so this is how a login removed or changed meanwhile is noticed; with
  several nodes it is also how the reconnect moves on from one that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from aiormq.exceptions import ChannelClosed

from chat_tui.config import redact
from chat_tui.transport.errors import (
    BrokerRefused,
    BrokerUnreachable,
    QueueUnavailable,
    broker_reply,
)
from chat_tui.transport.nodes import BrokerNodes
from chat_tui.transport.refusals import Refusals, queue_down

T = TypeVar("T")

log = logging.getLogger(__name__)

_TROUBLE = (TimeoutError, OSError, AMQPError, RuntimeError)
"""What a connection that fails or goes away raises, in aio-pika and below."""


async def on_first_answering(nodes: BrokerNodes, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt` on each node in turn (`nodes` points at it) until one does not raise
    `BrokerUnreachable`. A refusal ends the round: every node has the same accounts and
    objects, so the next would refuse alike."""
    failures: list[BrokerUnreachable] = []
    for _url in nodes.each():
        try:
            return await attempt()
        except BrokerUnreachable as exc:
            if nodes.several:
                log.info("%s; trying the next node", exc)
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    text = f"cannot reach any of the {len(failures)} RabbitMQ nodes: " + "; ".join(
        str(failure) for failure in failures
    )
    # A node that answered with a queue down says more than the others' silence.
    for failure in failures:
        if isinstance(failure, QueueUnavailable):
            raise QueueUnavailable(text, failure.queue)
    raise BrokerUnreachable(text)


async def open_on_node(
    nodes: BrokerNodes,
    refusals: Refusals,
    declare: Callable[[AbstractRobustConnection], Awaitable[T]],
    *,
    on_lost: Callable[[Any, BaseException | None], Awaitable[None]],
    on_restored: Callable[[Any], Awaitable[None]],
    connection_name: str,
    heartbeat: int,
    reconnect_interval: float,
    timeout: float,
) -> tuple[AbstractRobustConnection, T]:
    """Connect to `nodes`' current node and run `declare` on the connection, then
    register `on_lost` and `on_restored` on it; raise a `BrokerRefused` or
    `BrokerUnreachable` when connecting or declaring fails."""
    try:
        connection = await aio_pika.connect_robust(
            nodes.dial_url(),
            ssl_context=nodes.tls_context,
            heartbeat=heartbeat,
            reconnect_interval=reconnect_interval,
            timeout=timeout,
            client_properties={"connection_name": connection_name},
        )
    except _TROUBLE as exc:
        raise refusals.connect_failure(exc) from None
    try:
        # Bounded: a broker that stalls or goes down while we declare must not leave
        # the link waiting forever (fault scenarios 2 and 6).
        async with asyncio.timeout(timeout * 3):
            declared = await declare(connection)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await connection.close()
        if isinstance(exc, ChannelClosed):
            raise setup_failure(nodes, refusals, exc) from None
        if isinstance(exc, _TROUBLE):
            # The broker went away (or restarted) between the handshake and the end of
            # the declarations: that is "unreachable, retry", not a crash of the
            # caller's connect loop, which would leave it offline for good (scenario 2).
            raise _lost_while(nodes, "setting up", str(exc)) from None
        raise
    connection.close_callbacks.add(on_lost)
    connection.reconnect_callbacks.add(on_restored)
    return connection, declared


def setup_failure(
    nodes: BrokerNodes, refusals: Refusals, exc: ChannelClosed, doing: str = "setting up"
) -> BrokerRefused | BrokerUnreachable:
    """What a channel closed while declaring or consuming means, for either link: a
    refusal (never retried), a queue whose node is down (`QueueUnavailable`), or else
    the link lost under us (retry; in open mode the next attempt declares again)."""
    refusal = refusals.setup_refusal(exc)
    if refusal is not None:
        return refusal
    down = queue_down(redact(nodes.url), exc)
    if down is not None:
        return down
    return _lost_while(nodes, doing, broker_reply(exc))


def _lost_while(nodes: BrokerNodes, doing: str, why: str) -> BrokerUnreachable:
    return BrokerUnreachable(f"lost RabbitMQ at {redact(nodes.url)} while {doing}: {why}")


async def watch_for_refusal(
    nodes: BrokerNodes,
    connection: AbstractRobustConnection | None,
    refusals: Refusals,
    *,
    still_lost: Callable[[], bool],
    interval: float,
    connection_name: str,
) -> BrokerRefused | None:
    """Every `interval` while `still_lost()`, try the node `connection` reconnects to
    next, and point it at the next node when that one does not answer. The refusal,
    once a node refuses us; None once the link is back (or closed)."""
    while True:
        await asyncio.sleep(interval)
        if not still_lost():
            return None
        candidate = nodes.index
        try:
            probe = await aio_pika.connect(
                nodes.dial_url(candidate),
                ssl_context=nodes.tls_context,
                timeout=max(interval, 2.0),
                client_properties={"connection_name": connection_name},
            )
        except _TROUBLE as exc:
            failure = refusals.connect_failure(exc)
            if isinstance(failure, BrokerRefused):
                return failure
            # Unless the reconnect got through, or moved on by itself, meanwhile.
            if candidate == nodes.index and still_lost():
                nodes.move_on(connection)
            continue
        with contextlib.suppress(Exception):
            await probe.close()
