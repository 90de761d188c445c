"""Follows the directory stream from its first entry and folds it into the cache.

Stream entries cannot be dead-lettered; an invalid one is counted, logged and skipped,
and so is, in accounts mode, one that its `user_id` did not publish under its own routing
key, and, in any mode, a later protocol version's message.
A stream gives no end-of-stream signal over AMQP 0-9-1, so "caught up" means: no entry
arrived for `quiet` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from chat_tui.backoff import Backoff
from chat_tui.core.acking import ack_all
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
        self.invalid = 0
        """Skipped: malformed."""
        self.unverified = 0
        """Skipped: failed the sender checks (accounts mode)."""
        self.unknown_types = 0
        """Skipped: a later protocol version's message type."""
        self._last_activity: float | None = None  # None: not following yet
        self._pending = 0
        # Set when caught-up may have come nearer: following began, or a batch was
        # folded. A delivery alone need not wake the waiters: it only pushes the end of
        # the quiet further out, which they find when their quiet deadline passes.
        self._progress = asyncio.Event()

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
            events = [e for d in batch if (e := self._event_of(d)) is not None]
            changed = await self._apply_until_stored(events)
            # Acks on a stream only grant credit; the entries stay in the stream.
            await ack_all(batch)
            self._pending -= len(batch)
            self._last_activity = asyncio.get_running_loop().time()
            self._progress.set()
            if changed:
                self.on_change()

    def _event_of(self, delivery: Delivery) -> DirectoryEvent | None:
        """The event to fold, or None (counted) if the entry is to be skipped."""
        try:
            decoded = decode(delivery.body)
            if not isinstance(decoded, DirectoryEvent | UnknownMessage):
                raise MalformedMessageError(f"{decoded.type} in the directory")
        except MalformedMessageError as exc:
            self.invalid += 1
            log.warning("skipping an invalid directory entry: %s", exc)
            return None
        if isinstance(decoded, UnknownMessage):
            self.unknown_types += 1
            log.info("skipping a %s message in the directory", decoded.type)
            return None
        if self.verify_senders and (
            problem := directory_sender_problem(delivery.user_id, delivery.routing_key, decoded)
        ):
            self.unverified += 1
            log.warning("skipping a directory entry: %s", problem)
            return None
        return decoded

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
