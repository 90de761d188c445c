"""Settling deliveries safely across reconnects.

After a reconnect, deliveries from the old channel can still sit in a batch. Their
delivery tags mean nothing on the new channel, and the broker has already requeued
them, so they are skipped here.

A settle that does not go out is logged and left to the broker, which redelivers (a
stream is read again from its first entry when its channel is restored). It never ends
the caller's loop: a pipeline whose task ended over one lost ack would leave its
deliveries piling up, unstored, until the client starts again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from chat_tui.transport.consumers import Delivery

log = logging.getLogger(__name__)

# aiormq fails an ack on a link that just died with a bare `Exception` (the drain
# future of the lost writer), not only with its own errors. Whatever the type, a settle
# that did not go out leaves the delivery with the broker, which redelivers it; letting
# it escape killed the receive loop for good (fault scenario 3).
_SETTLE_ERRORS = (Exception,)


def _asked_to_stop() -> bool:
    """Whether a CancelledError is this task's own cancellation. aiormq fails every
    future of a connection that closes with CancelledError (a heartbeat timeout, or a
    link the connector drops), an ack in flight too; taken for a cancellation, that
    ended the directory follower's loop without a word (docs/performance.md, "1,000
    users")."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def _went_out(settle: Awaitable[None], what: str) -> bool:
    try:
        await settle
    except asyncio.CancelledError:
        if _asked_to_stop():
            raise
        log.info("%s skipped, the link closed under it; the broker will redeliver", what)
        return False
    except _SETTLE_ERRORS as exc:
        log.info("%s skipped, the broker will redeliver: %s", what, exc)
        return False
    return True


async def ack_all(messages: Sequence[Delivery]) -> int:
    """Ack with `multiple` up to the last delivery of each live channel; return how many
    deliveries were covered."""
    last_per_channel: dict[int, Delivery] = {}
    covered: dict[int, int] = {}
    for message in messages:
        key = message.channel_key
        if key is None:
            continue
        last_per_channel[key] = message
        covered[key] = covered.get(key, 0) + 1
    done = 0
    for key, last in last_per_channel.items():
        if await _went_out(last.ack_through(), "ack"):
            done += covered[key]
    return done


async def reject(message: Delivery) -> None:
    """Reject without requeue: the queue dead-letters it to NS.dead."""
    await _went_out(message.reject(), "reject")


async def requeue(messages: Sequence[Delivery]) -> None:
    for message in messages:
        if message.channel_key is None:
            continue
        await _went_out(message.requeue(), "nack")
