"""What a face shows of the client's connection: the core's own words for it.

The transport reports its link (`LinkStatus`); the core adds what only it knows (the
consumers are set up, another instance holds the inbox, what still waits to go out)
and hands the faces a `ClientStatus`. Faces never see the transport's types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from chat_tui.transport.connection import LinkState, LinkStatus


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


@dataclass(frozen=True)
class ClientStatus:
    """What the header shows: the link, the next retry, and what still waits to go out."""

    state: ConnectionState
    next_retry_at: datetime | None = None
    error: str | None = None
    unsent_messages: int = 0
    """Own chat messages not yet confirmed by the broker (receipts are not counted)."""
    standby: bool = False
    """Another instance of this user holds the inbox; this one only waits."""
    refused: str | None = None
    """The broker refused us for good (login, rights, a missing object, a certificate):
    what was refused and what to do. The client does not retry; show it until it stops."""
    node: str | None = None
    """`host:port` of the broker node the client is on, while online: on a cluster the
    client fails over between nodes, and this says which one it reached."""
    unavailable_queue: str | None = None
    """The broker answered, but cannot serve this queue of ours (its node is down, or
    RabbitMQ lost it); `error` says what to do. The client keeps trying."""


class StatusBoard:
    """Gathers what the status is made of and tells the face whenever it changes.

    Online means "consuming and following the directory", not merely connected: the
    link must be up and the consumers set up (`ready`)."""

    def __init__(self, publish: Callable[[ClientStatus], None]) -> None:
        self._publish = publish
        self._link = LinkStatus(LinkState.CONNECTING)
        self._ready = False
        self._online = asyncio.Event()
        self._refused = asyncio.Event()
        self._refusal_listeners: list[Callable[[str], None]] = []
        self.fatal_error: str | None = None
        """Set when retrying cannot help: the broker refused us (see `refused`)."""
        self.unsent_messages = 0
        self.standby = False
        self.current = ClientStatus(ConnectionState.CONNECTING)

    @property
    def online(self) -> bool:
        return self._online.is_set()

    async def wait_online(self) -> None:
        await self._online.wait()

    async def wait_refused(self) -> str:
        """Wait until the broker refuses us for good; what it refused and what to do."""
        await self._refused.wait()
        assert self.fatal_error is not None
        return self.fatal_error

    def when_refused(self, listener: Callable[[str], None]) -> None:
        """Call `listener` with the text of the refusal, once, whenever it comes: at the
        first connection or later, from the link."""
        self._refusal_listeners.append(listener)

    def link_changed(self, link: LinkStatus) -> None:
        if link.refused is not None:
            self.refused(link.refused)
            return
        self._link = link
        self._update_online()
        self.publish()

    def offline(
        self,
        error: str,
        *,
        next_retry_at: datetime | None = None,
        unavailable_queue: str | None = None,
    ) -> None:
        self.link_changed(
            LinkStatus(
                LinkState.OFFLINE,
                next_retry_at=next_retry_at,
                error=error,
                unavailable_queue=unavailable_queue,
            )
        )

    def refused(self, error: str) -> None:
        """The broker refused us for good: say so until the client stops."""
        if self.fatal_error is not None:
            return
        self.fatal_error = error
        self.offline(error)
        self._refused.set()
        for listener in self._refusal_listeners:
            listener(error)

    def consumers_ready(self) -> None:
        self._ready = True
        self._update_online()
        self.publish()

    def set_unsent(self, count: int) -> None:
        if count != self.unsent_messages:
            self.unsent_messages = count
            self.publish()

    def set_standby(self, standby: bool) -> None:
        if standby != self.standby:
            self.standby = standby
            self.publish()

    def _update_online(self) -> None:
        if self._link.state is LinkState.ONLINE and self._ready:
            self._online.set()
        else:
            self._online.clear()

    def publish(self) -> None:
        link = self._link
        self.current = ClientStatus(
            state=ConnectionState(link.state.value),
            next_retry_at=link.next_retry_at,
            error=link.error or self.fatal_error,
            unsent_messages=self.unsent_messages,
            standby=self.standby,
            refused=self.fatal_error,
            node=link.node if link.state is LinkState.ONLINE else None,
            unavailable_queue=link.unavailable_queue,
        )
        self._publish(self.current)
