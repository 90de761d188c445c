"""One archive worker: the broker link, the directory it follows, its intake and its
request server, in the order they must start and stop.

The directory comes first: a request is answered only once the worker knows who is in
which group. The first connection is retried with the client's backoff (a worker
started before its broker waits for it), a refusal ends it with what to do. Stopping
takes no more deliveries, lets those already received be committed and acked (the
batch in progress and the prefetch behind it) and the requests in progress be answered,
and closes the link, which hands back to the broker whatever is left unsettled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Self

from chat_tui.backoff import Backoff
from chat_tui.config import Settings
from chat_tui.core.archive_intake import ArchiveIntake, StoreBatch
from chat_tui.core.archive_requests import Answer, RequestServer
from chat_tui.core.directory import DirectoryFollower
from chat_tui.core.directory_snapshot import DirectorySnapshot
from chat_tui.core.errors import ChatError
from chat_tui.protocol.names import Names
from chat_tui.protocol.permissions import archive_login
from chat_tui.transport.errors import BrokerRefused, BrokerUnreachable
from chat_tui.transport.work_queues import WorkQueues

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
"""How long a stopping worker gives its batch and requests in progress."""
REPORT_INTERVAL = 60.0
"""How often `--verbose` says what the worker did, when it did anything."""


class ArchiveRefused(ChatError):
    """The broker refused the archive; the text says what to do."""


def archive_accounts_mode(settings: Settings) -> bool:
    """A deployment with accounts: the archive logs in with its own account."""
    return settings.broker_login == archive_login(Names(settings.namespace))


class ArchiveWorker:
    def __init__(self, settings: Settings, store: StoreBatch, answer: Answer) -> None:
        self.settings = settings
        names = Names(settings.namespace)
        self.accounts_mode = archive_accounts_mode(settings)
        self.link = WorkQueues(
            settings.broker_urls,
            names,
            password=settings.broker_password,
            accounts_mode=self.accounts_mode,
            queue_type=settings.queue_type,
            tls_ca_file=settings.tls_ca_file,
            tls_insecure=settings.tls_insecure,
            heartbeat=settings.heartbeat,
            reconnect_interval=settings.reconnect_interval,
            confirm_timeout=settings.confirm_timeout,
        )
        self.directory = DirectorySnapshot()
        self.follower = DirectoryFollower(
            self.directory, on_change=lambda: None, verify_senders=self.accounts_mode
        )
        self.intake = ArchiveIntake(store, verify_senders=self.accounts_mode)
        self.requests = RequestServer(
            answer,
            self.link.reply,
            self.directory,
            self.follower.wait_caught_up,
            verify_requesters=self.accounts_mode,
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self, connect_timeout: float = 5.0) -> None:
        """Connect (retrying while the broker is unreachable, or answers with one of our
        queues down), follow the directory to its end, then consume both queues. Raises
        `ArchiveRefused`."""
        backoff = Backoff(self.settings.reconnect_interval, 30.0)
        while True:
            await self._connect(backoff, connect_timeout)
            if not self._tasks:
                self._tasks.append(asyncio.create_task(self.follower.run()))
                self._tasks.append(asyncio.create_task(self.intake.run()))
                self._tasks.append(asyncio.create_task(self._report_every(REPORT_INTERVAL)))
            try:
                await self.link.consume_directory(self.follower.on_delivery)
                self.follower.started()
                await self.follower.wait_caught_up(10.0)
                await self.link.consume_archive(self.intake.on_delivery)
                await self.link.consume_requests(self.requests.on_delivery)
                return
            except BrokerRefused as exc:
                await self.stop()
                raise ArchiveRefused(str(exc)) from None
            except BrokerUnreachable as exc:  # a queue whose node is down, a lost link
                log.warning("%s; setting up again in %g s", exc, backoff.current)
                await self.link.drop()
                await backoff.wait()

    async def _connect(self, backoff: Backoff, timeout: float) -> None:
        while True:
            try:
                await self.link.connect(timeout)
            except BrokerRefused as exc:
                raise ArchiveRefused(str(exc)) from None
            except BrokerUnreachable as exc:
                log.warning("%s; next try in %g s", exc, backoff.current)
                await backoff.wait()
            else:
                mode = "accounts" if self.accounts_mode else "open"
                log.info("archive connected to %s (%s mode)", self.link.node, mode)
                return

    def summary(self) -> str:
        stored, answered = self.intake.counters, self.requests.counters
        return (
            f"stored {stored.stored} (duplicates {stored.duplicates}, dead-lettered "
            f"{stored.rejected}, of them {stored.unverified} unverified, batches handed back "
            f"{stored.handed_back}); answered {answered.answered}, refused {answered.refused}, "
            f"dropped {answered.dropped}, answers not sent {answered.unsent}"
        )

    async def _report_every(self, interval: float) -> None:
        last = self.summary()
        while True:
            await asyncio.sleep(interval)
            if (now := self.summary()) != last:
                log.info("archive so far: %s", now)
                last = now

    async def wait_refused(self) -> str:
        """The refusal's text, once the broker refuses the archive after connecting."""
        assert self.link.refused is not None, "start() first"
        return await self.link.refused

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        await self.link.stop_consuming()
        # One deadline for both: the intake and the requests finish side by side.
        finished, _ = await asyncio.gather(
            self.intake.finish(timeout), self.requests.finish(timeout)
        )
        if not finished:
            log.warning("the messages received did not all finish; the broker redelivers the rest")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.link.close()
        log.info("archive stopped: %s", self.summary())
