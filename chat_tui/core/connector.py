"""The first connection, and a fresh start when setting up on a new link fails.

Once connected, aio-pika's robust connection reconnects by itself (see "Robust
connection from aio-pika, plus our own first-connect loop" in docs/architecture.md);
this loop only gets the client there. A refusal, at the first connection or one the
transport reports later, reaches the user the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from chat_tui.backoff import Backoff
from chat_tui.core.status import StatusBoard
from chat_tui.transport.connection import InboxAtConnect
from chat_tui.transport.errors import BrokerRefused, BrokerUnreachable, QueueUnavailable
from chat_tui.transport.link import BrokerLink

log = logging.getLogger(__name__)

MAX_CONNECT_BACKOFF = 30.0


class Connector:
    """Connects with backoff until the consumers are set up, or the broker refuses us
    (`BrokerRefused`: a login, a right, a missing object, a certificate)."""

    def __init__(
        self,
        transport: BrokerLink,
        status: StatusBoard,
        set_up: Callable[[InboxAtConnect], Awaitable[None]],
        *,
        first_delay: float,
        tell_user: Callable[[str], None],
    ) -> None:
        self._transport = transport
        self._status = status
        self._set_up = set_up
        self._tell_user = tell_user
        self._backoff = Backoff(first_delay, max(first_delay, MAX_CONNECT_BACKOFF))
        self.first_attempt_ended = asyncio.Event()
        self._told_unavailable: str | None = None
        status.when_refused(self._told_refused)

    async def run(self) -> None:
        while True:
            try:
                inbox = await self._transport.connect()
            except BrokerRefused as exc:
                self._refused(exc)
                return
            except BrokerUnreachable as exc:
                self._offline(exc)
                self.first_attempt_ended.set()
                await self._backoff.wait()
                continue
            try:
                await self._set_up(inbox)
            except BrokerRefused as exc:
                await self._transport.drop()
                self._refused(exc)
                return
            except QueueUnavailable as exc:
                # Consuming a queue whose node is down: the same as declaring one.
                await self._transport.drop()
                self._offline(exc)
                self.first_attempt_ended.set()
                await self._backoff.wait()
                continue
            except Exception as exc:
                # The link died while the consumers were being set up. Without this the
                # loop would end and leave a client with no consumers for good.
                log.warning("connection lost while starting consumers: %r", exc)
                await self._transport.drop()
                self._status.offline(str(exc), next_retry_at=self._retry_at())
                # The broker answered: try again after the same delay, not a longer one.
                await asyncio.sleep(self._backoff.current)
                continue
            self._told_unavailable = None  # a queue down again later is news again
            self.first_attempt_ended.set()
            return

    def _offline(self, exc: BrokerUnreachable) -> None:
        unavailable = exc.queue if isinstance(exc, QueueUnavailable) else None
        self._status.offline(
            str(exc), next_retry_at=self._retry_at(), unavailable_queue=unavailable
        )
        if unavailable is not None and str(exc) != self._told_unavailable:
            # Once, not at every retry: the header keeps showing it.
            self._told_unavailable = str(exc)
            log.info("%s", exc)
            self._tell_user(str(exc))

    def _refused(self, refusal: BrokerRefused) -> None:
        # Retrying cannot help (a login, a right, a missing object): say why, and stop.
        self._status.refused(str(refusal))

    def _told_refused(self, refusal: str) -> None:
        log.error("the broker refused us: %s", refusal)
        self._tell_user(refusal)
        self.first_attempt_ended.set()

    def _retry_at(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._backoff.current)
