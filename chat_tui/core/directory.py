"""Follows the directory stream from its first entry and folds it into the cache.

Batches are sorted by `sort_batch`, as the other pipelines' are, but stream entries
cannot be dead-lettered: an invalid one is counted, logged and skipped, and so is, in
accounts mode, one that its `user_id` did not publish under its own routing key, and, in
any mode, a later protocol version's message.
A stream gives no end-of-stream signal over AMQP 0-9-1, so "caught up" means: no entry
arrived for `quiet` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from chat_tui.backoff import Backoff
from chat_tui.core.acking import ack_all
from chat_tui.core.batch_sorting import UnverifiedSenderError, sort_batch
from chat_tui.core.batching import Batcher
from chat_tui.core.sender_checks import directory_sender_problem
from chat_tui.protocol.models import DirectoryEvent, MalformedMessageError, UnknownMessage, decode
from chat_tui.transport.consumers import Delivery

log = logging.getLogger(__name__)


class DirectoryFold(Protocol):
    """Where the events go: the client's cache (`Store`), or the archive's memory
    (`DirectorySnapshot`)."""

    async def apply_directory(self, events: Sequence[DirectoryEvent]) -> bool:
        """Fold events in stream order; whether anything changed."""
        ...


def validate_entry(
    delivery: Delivery, *, verify_senders: bool = False
) -> DirectoryEvent | UnknownMessage:
    """A directory event, a later version's message to skip, or MalformedMessageError;
    with `verify_senders` (accounts mode), `UnverifiedSenderError` for an event that its
    `user_id` did not publish under its own routing key."""
    decoded = decode(delivery.body)
    if isinstance(decoded, UnknownMessage):
        return decoded
    if not isinstance(decoded, DirectoryEvent):
        raise MalformedMessageError(f"{decoded.type} in the directory")
    if verify_senders and (
        problem := directory_sender_problem(delivery.user_id, delivery.routing_key, decoded)
    ):
        raise UnverifiedSenderError(problem)
    return decoded


class DirectoryFollower:
    def __init__(
        self,
        store: DirectoryFold,
        on_change: Callable[[], None],
        quiet: float = 0.25,
        *,
        verify_senders: bool = False,
    ) -> None:
        self.store = store
        self.on_change = on_change
        self.quiet = quiet
        self.verify_senders = verify_senders
        """Accounts mode: an event counts only from its `user_id`, under its own key."""
        self.batcher: Batcher[Delivery] = Batcher(1000, 0.02)
        self.rejected = 0
        """Skipped: malformed, or failed the sender checks (accounts mode)."""
        self.unverified = 0
        """Of those skipped, how many failed the sender checks alone."""
        self.unknown_types = 0
        """Skipped: a later protocol version's message type."""
        self._last_activity: float | None = None  # None: not following yet
        self._pending = 0
        # Set when caught-up may have come nearer: following began, or a batch was
        # folded. A delivery alone need not wake the waiters: it only pushes the end of
        # the quiet further out, which they find when their quiet deadline passes.
        self._progress = asyncio.Event()

    @property
    def invalid(self) -> int:
        """Skipped: malformed (the rejected ones, less those that failed the sender checks
        alone)."""
        return self.rejected - self.unverified

    def on_delivery(self, message: Delivery) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        self._pending += 1
        self.batcher.put(message)

    def started(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        self._progress.set()

    async def run(self) -> None:
        while True:
            batch = await self.batcher.next_batch()
            validate = partial(validate_entry, verify_senders=self.verify_senders)
            sorted_batch = await sort_batch(
                batch, validate, self, log, what="directory entry", dead_letter=False
            )
            changed = await self._apply_until_stored(sorted_batch.messages)
            # Acks on a stream only grant credit; the entries, skipped ones too, stay in
            # the stream. Without dead-lettering, the whole batch settles.
            await ack_all(sorted_batch.settled)
            self._pending -= len(batch)
            self._last_activity = asyncio.get_running_loop().time()
            self._progress.set()
            if changed:
                self.on_change()

    async def _apply_until_stored(self, events: list[DirectoryEvent]) -> bool:
        # Acking a stream entry only grants credit; a batch that was acked but not folded
        # would be missing until the next start. So retry until the cache takes it.
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                return await self.store.apply_directory(events)
            except Exception as exc:
                log.error("could not store directory events, retrying: %s", exc)
                await backoff.wait()

    async def wait_caught_up(self, timeout: float = 5.0) -> bool:
        """Wait until nothing arrived for `quiet` seconds and all of it is folded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            wake_at = deadline
            if self._last_activity is not None and self._pending == 0:
                quiet_from = self._last_activity + self.quiet
                if loop.time() >= quiet_from:
                    return True
                wake_at = min(wake_at, quiet_from)
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(wake_at):
                    await self._progress.wait()
        return False
