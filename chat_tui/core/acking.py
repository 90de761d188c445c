"""Settling deliveries safely across reconnects.

After a reconnect, deliveries from the old channel can still sit in a batch. Their
delivery tags mean nothing on the new channel, and the broker has already requeued
them, so they are skipped here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from chat_tui.transport.consumers import Delivery

log = logging.getLogger(__name__)

# aiormq fails an ack on a link that just died with a bare `Exception` (the drain
# future of the lost writer), not only with its own errors. Whatever the type, a settle
# that did not go out leaves the delivery with the broker, which redelivers it; letting
# it escape killed the receive loop for good (fault scenario 3).
_SETTLE_ERRORS = (Exception,)


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
        try:
            await last.ack_through()
            done += covered[key]
        except _SETTLE_ERRORS as exc:
            log.info("ack skipped, the broker will redeliver: %s", exc)
    return done


async def reject(message: Delivery) -> None:
    """Reject without requeue: the queue dead-letters it to NS.dead."""
    try:
        await message.reject()
    except _SETTLE_ERRORS as exc:
        log.info("reject skipped, the broker will redeliver: %s", exc)


async def requeue(messages: Sequence[Delivery]) -> None:
    for message in messages:
        if message.channel_key is None:
            continue
        try:
            await message.requeue()
        except _SETTLE_ERRORS as exc:
            log.info("nack skipped, the broker will redeliver: %s", exc)
