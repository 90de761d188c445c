"""Sorting a batch of deliveries: valid, dead-lettered or ignored.

The step every receiving pipeline shares (the inbox, the archive's intake, receipts,
the directory follower): an invalid delivery is rejected without requeue at once, which
dead-letters it; a later protocol version's message is ignored, and settles with its
batch; the rest is the pipeline's to store. What a pipeline stores and how it settles
stay its own. A stream (the directory) cannot dead-letter: there an invalid entry is
skipped, and settles with its batch too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from chat_tui.core.acking import reject
from chat_tui.protocol.models import MalformedMessageError, UnknownMessage
from chat_tui.transport.consumers import Delivery

M = TypeVar("M")


class UnverifiedSenderError(MalformedMessageError):
    """A well-formed message that does not come from the sender it names; dead-lettered
    like a malformed one."""


class SortCounts(Protocol):
    rejected: int
    """Invalid: dead-lettered, or on a stream skipped."""
    unverified: int
    """Of those rejected, how many failed the sender check alone (`UnverifiedSenderError`)."""
    unknown_types: int
    """Ignored: a later protocol version's message type."""


@dataclass
class SortedBatch(Generic[M]):
    valid: list[tuple[Delivery, M]] = field(default_factory=list)
    settled: list[Delivery] = field(default_factory=list)
    """The valid and the ignored deliveries (on a stream, the invalid ones too), in
    arrival order: the pipeline acks them together, through the last. An ignored one is
    never acked alone: its ack (`multiple`) would cover the tags of the deliveries before
    it, which may not be stored yet."""

    @property
    def messages(self) -> list[M]:
        return [message for _, message in self.valid]


async def sort_batch(
    batch: list[Delivery],
    validate: Callable[[Delivery], M | UnknownMessage],
    counts: SortCounts,
    log: logging.Logger,
    *,
    what: str = "delivery",
    dead_letter: bool = True,
) -> SortedBatch[M]:
    """Dead-letter what `validate` finds malformed, count and log it under the pipeline's
    own `log`; sort the rest into valid messages and ignored ones. Without `dead_letter`
    (a stream) a malformed one is counted and logged alike, and settles with the batch:
    a stream keeps its entries whatever the consumer says, and its acks only grant
    credit."""
    result: SortedBatch[M] = SortedBatch()
    for delivery in batch:
        try:
            checked = validate(delivery)
        except MalformedMessageError as exc:
            counts.rejected += 1
            if isinstance(exc, UnverifiedSenderError):
                counts.unverified += 1
            if dead_letter:
                log.warning("dead-lettering an invalid %s: %s", what, exc)
                await reject(delivery)
            else:
                log.warning("skipping an invalid %s: %s", what, exc)
                result.settled.append(delivery)
            continue
        if isinstance(checked, UnknownMessage):
            counts.unknown_types += 1
            log.info(
                "ignoring a %s message of protocol version %d",
                checked.type,
                checked.protocol_version,
            )
        else:
            result.valid.append((delivery, checked))
        result.settled.append(delivery)
    return result
