"""The outbox publisher: drains the store's outbox to the broker, in order.

Everything that goes out (messages, receipts, directory events) is written to the
outbox first, so a crash, a nack, a timeout or a dead link only delays it. It is
re-published with the same message_id until confirmed; receivers deduplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from chat_tui.backoff import Backoff
from chat_tui.protocol.models import SendMessage, decode
from chat_tui.store import Store
from chat_tui.store.records import OutboxItem, StatusChange
from chat_tui.transport.errors import PublishFailed, PublishRefused, PublishReturned
from chat_tui.transport.link import BrokerLink

log = logging.getLogger(__name__)

WINDOW = 100
"""Publishes in flight at once: confirms are awaited together, not one by one."""
MAX_BACKOFF = 30.0
RECEIPT_DELAY = 0.1
"""How long `receipts_queued` lets receipts gather before publishing them."""


def returned_reason(item: OutboxItem) -> str:
    """Why a returned chat message can never be delivered, in the user's words."""
    try:
        message = decode(item.body)
    except ValueError:
        return "the broker could not route it"
    if isinstance(message, SendMessage) and message.recipient_id is not None:
        return f"unknown user {message.recipient_id!r}: nobody has that inbox"
    if isinstance(message, SendMessage) and message.group_id is not None:
        return f"nobody is in group {message.group_id!r}"
    return "the broker could not route it"


class OutboxPublisher:
    def __init__(
        self,
        store: Store,
        transport: BrokerLink,
        *,
        on_changes: Callable[[Sequence[StatusChange]], None],
        on_failed: Callable[[StatusChange, str], None],
        on_drained: Callable[[], None],
        first_backoff: float = 0.5,
    ) -> None:
        self.store = store
        self.transport = transport
        self.on_changes = on_changes
        self.on_failed = on_failed
        self.on_drained = on_drained
        self._backoff = Backoff(first_backoff, MAX_BACKOFF)
        self._wake = asyncio.Event()
        self._link_back = asyncio.Event()
        """Set by `link_restored`: the only thing that cuts a backoff short."""
        self._idle = asyncio.Event()
        """Everything read or handed so far is published and confirmed."""
        self._soon: asyncio.TimerHandle | None = None
        self._unread_rows = True
        """Rows may wait in the outbox table that were not handed to us: read it."""
        self._handed: list[OutboxItem] = []
        self._seen_through = 0
        """The highest outbox seq read or published so far."""

    def rows_queued(self) -> None:
        """Rows were queued that only the outbox table knows of: read it."""
        self._unread_rows = True
        self._idle.clear()
        self._wake.set()

    def link_restored(self) -> None:
        """The link is (back) up: publish everything now, even in the middle of a
        backoff. New rows alone do not cut a backoff short: while publishes fail, a
        user typing, or receipts queued every 0.1 s in a backlog, would retry the whole
        window at their pace."""
        self._link_back.set()
        self.rows_queued()

    def publish_committed(self, item: OutboxItem) -> None:
        """A message just committed to the outbox: publish it without reading it back,
        one trip to the SQLite thread fewer on the sender's path. When rows may wait
        ahead of it (queued offline, or a publish is being retried), the table is read
        as usual, and it goes out in its turn."""
        self._handed.append(item)
        self._idle.clear()
        self._wake.set()

    def receipts_queued(self) -> None:
        """Rows were queued that can wait RECEIPT_DELAY: cumulative receipts, which lose
        nothing by waiting. During a backlog every stored batch queues a `delivered`
        receipt; waking at once cost each batch an outbox read, a publish and a commit on
        the one SQLite thread the receive pipeline waits for. Meanwhile they coalesce in
        the outbox."""
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(RECEIPT_DELAY, self._wake_now)

    def _wake_now(self) -> None:
        self._soon = None
        self.rows_queued()

    async def until_idle(self) -> None:
        """Read the outbox table again, and return once everything in it so far has been
        published and confirmed (or returned). Waits as long as the link is down."""
        self.rows_queued()
        await self._idle.wait()

    async def _next_items(self) -> tuple[list[OutboxItem], bool]:
        """The next items to publish, and whether more may wait behind them."""
        if not self._unread_rows:
            handed, self._handed = self._handed, []
            # A handed row may also have been in a read that began after its commit.
            return [item for item in handed if item.seq > self._seen_through], False
        self._unread_rows = False
        # Everything handed so far was committed before this read: it reads them too.
        self._handed.clear()
        items = await self.store.outbox(WINDOW)
        more = len(items) == WINDOW
        self._unread_rows = self._unread_rows or more
        return items, more

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.transport.online:
                items, more = await self._next_items()
                if not items:
                    self._idle.set()
                    break
                self._seen_through = max(self._seen_through, items[-1].seq)
                if await self._publish_window(items):
                    self._backoff.reset()
                    if more:
                        continue
                    # Drained; whatever was queued since has woken us (or will, for
                    # receipts, a little later).
                    if not self._wake.is_set():
                        self._idle.set()
                    break
                # The outbox table still holds what failed: retry from there, after a
                # wait that only a reconnect (link_restored) cuts short.
                self._unread_rows = True
                self._link_back.clear()
                await self._backoff.wait(self._link_back)
                self._wake.clear()
            self.on_drained()

    async def _publish_window(self, items: list[OutboxItem]) -> bool:
        """Publish a window concurrently; return False if any needs a retry."""
        # Tasks start in order, so the frames go out in outbox order on one channel.
        results = await asyncio.gather(
            *(self.transport.publish(item) for item in items), return_exceptions=True
        )
        confirmed: list[OutboxItem] = []
        retry: list[OutboxItem] = []
        errors: list[str] = []
        for item, result in zip(items, results, strict=True):
            if result is None:
                confirmed.append(item)
            elif isinstance(result, PublishReturned):
                # A refusal says what the broker refused; a return only that nobody is
                # bound, which for a DM means an unknown user.
                reason = (
                    str(result) if isinstance(result, PublishRefused) else returned_reason(item)
                )
                change = await self.store.fail_outgoing(item, reason)
                if change is not None:
                    self.on_failed(change, reason)
            elif isinstance(result, BaseException):
                # Cancelled: the client is stopping, or aio-pika dropped the channel
                # under the publish; the row stays and goes out on the next start.
                if not isinstance(result, PublishFailed | asyncio.CancelledError):
                    log.error("unexpected publish error", exc_info=result)
                retry.append(item)
                errors.append(str(result) or type(result).__name__)
        if confirmed:
            changes = await self.store.confirm_published(confirmed)
            if changes:
                self.on_changes(changes)
        if retry:
            log.warning("%d publishes to retry: %s", len(retry), errors[0])
            await self.store.record_attempt(retry, errors[0])
            return False
        return True
