"""`BrokerLink`: what the core needs of a link to the broker.

`Transport` is the real one. Tests of the core's own logic run it on a stand-in with
the same surface (tests/memory_transport.py), as well as against RabbitMQ.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from chat_tui.transport.connection import InboxAtConnect, LinkStatus
from chat_tui.transport.consumers import DeliveryHandler
from chat_tui.transport.publisher import Publishable


class BrokerLink(Protocol):
    @property
    def login(self) -> str:
        """The broker username; every publish carries it as its AMQP `user_id`."""
        ...

    on_status: Callable[[LinkStatus], None]
    """Called with every change of the link."""
    on_reconnected: Callable[[], Awaitable[None]] | None
    """Awaited once the link is back after a loss."""

    @property
    def online(self) -> bool: ...

    async def connect(self, connect_timeout: float = 5.0) -> InboxAtConnect:
        """Connect and declare (in accounts mode: look up); raises BrokerUnreachable
        (retry) or a BrokerRefused that says what was refused and what to do."""
        ...

    async def drop(self) -> None:
        """Close quietly so that `connect` can start afresh."""
        ...

    async def close(self) -> None: ...

    async def publish(self, out: Publishable) -> None:
        """Return once confirmed; raises PublishFailed (retry) or PublishReturned (never;
        its PublishRefused when the broker refused the message itself)."""
        ...

    async def consume_inbox(self, handler: DeliveryHandler) -> None: ...

    async def consume_receipts(self, handler: DeliveryHandler) -> None: ...

    async def consume_directory(self, handler: DeliveryHandler) -> None: ...

    async def bind_group(self, group_id: str) -> None: ...

    async def unbind_group(self, group_id: str) -> None: ...
