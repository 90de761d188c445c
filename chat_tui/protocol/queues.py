"""The exchanges, queues and bindings of docs/protocol.md as data: what the client
declares and what `chat-tui admin` provisions, so that the two cannot disagree. A queue
declared again with other arguments fails with PRECONDITION_FAILED.

Two layouts, chosen per deployment by `queue_type`: `classic` (one node, protocol
version 1's queues) and `quorum` (a cluster: the inboxes, receipts queues and the
dead-letter queue replicated, so that they survive a node). The directory stream is the
same in both: RabbitMQ 3.10 puts a replica of a stream on every node of the cluster it
is declared in, which is what the directory needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from chat_tui.protocol.names import (
    ARCHIVE_BINDINGS,
    ARCHIVE_REQUEST_KEY,
    DIRECTORY_BINDING,
    Names,
    receipt_key,
    user_key,
)

ArgumentValue = str | int | bool
QueueArguments = dict[str, ArgumentValue]

QueueType = Literal["classic", "quorum"]
"""`Settings.queue_type`: how the inboxes, receipts queues and NS.dead-letters are declared."""

DEAD_LETTERS_MAX_LENGTH = 100_000
"""A flood of bad bodies cannot fill the broker's disk: the oldest are dropped."""

QUORUM_DELIVERY_LIMIT = 1_000_000_000
"""A quorum queue dead-letters a message after this many deliveries. The inbox pipeline
hands a batch back (requeue) whenever the local disk fails, and no number of those may
dead-letter a valid message: at one hand-back per 10 s this is some 300 years. It is set
rather than left out because, set, RabbitMQ 3.10 requeues a handed-back message at the
head of the queue (left out, at the back: behind the whole backlog), and RabbitMQ 4.0
gives a queue without one a limit of 20 (a few minutes of a full disk). -1, "no limit"
on 4.0, dead-letters at the first requeue on 3.10."""

_QUORUM_PERSONAL: QueueArguments = {
    "x-queue-type": "quorum",
    "x-delivery-limit": QUORUM_DELIVERY_LIMIT,
    # What chat-tui dead-letters (bodies it cannot accept) is evidence of a bug or an
    # attack: at least once, it reaches NS.dead-letters even while that queue elects a
    # leader. RabbitMQ applies that strategy only with reject-publish, which acts on a
    # length limit alone, and chat-tui sets none: were an operator to add one, a full
    # inbox would refuse the publish (the sender's outbox retries) instead of dropping
    # its oldest message.
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str
    """"topic" or "fanout", as AMQP and the management API spell them."""
    durable: bool = True


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: Mapping[str, ArgumentValue] = field(default_factory=dict)
    durable: bool = True


@dataclass(frozen=True)
class BindingSpec:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    """Declared in this order: exchanges, queues, then the bindings between them."""

    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]


def personal_queue_arguments(names: Names, queue_type: QueueType = "classic") -> QueueArguments:
    """Arguments of every inbox and receipts queue; they must match on every declare."""
    arguments: QueueArguments = {
        "x-dead-letter-exchange": names.dead_exchange,
        "x-single-active-consumer": True,
    }
    if queue_type == "quorum":
        arguments.update(_QUORUM_PERSONAL)
    return arguments


def dead_letters_arguments(queue_type: QueueType = "classic") -> QueueArguments:
    """NS.dead-letters as `chat-tui admin init` declares it: bounded."""
    if queue_type == "quorum":
        return {"x-queue-type": "quorum", "x-max-length": DEAD_LETTERS_MAX_LENGTH}
    return {"x-max-length": DEAD_LETTERS_MAX_LENGTH}


def open_dead_letters_arguments(queue_type: QueueType = "classic") -> QueueArguments:
    """NS.dead-letters as open-mode clients declare it. Classic keeps protocol version
    1's arguments (none), which every existing broker has; a quorum deployment is new,
    so it is bounded in both modes."""
    if queue_type == "quorum":
        return dead_letters_arguments("quorum")
    return {}


ARCHIVE_REQUEST_TTL_MS = 60_000
"""A request nobody answered within a minute is dropped: its requester gave up long
before (a client waits seconds), and an archive that comes back after an outage should
catch up on messages, not answer a backlog of questions nobody waits for."""


def archive_queue_arguments(names: Names, queue_type: QueueType = "classic") -> QueueArguments:
    """NS.archive: competing consumers (no single active consumer), invalid bodies
    dead-lettered to NS.dead; on a cluster replicated, with the inboxes' delivery limit
    and at-least-once dead-lettering, for the same reasons."""
    arguments: QueueArguments = {"x-dead-letter-exchange": names.dead_exchange}
    if queue_type == "quorum":
        arguments.update(_QUORUM_PERSONAL)
    return arguments


def archive_requests_arguments(queue_type: QueueType = "classic") -> QueueArguments:
    """NS.archive.requests: answered or refused, never dead-lettered; stale ones expire."""
    arguments: QueueArguments = {"x-message-ttl": ARCHIVE_REQUEST_TTL_MS}
    if queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
    return arguments


def type_bound_arguments(names: Names) -> frozenset[str]:
    """The arguments in which a queue's two layouts differ. A queue of the namespace
    that the broker finds inequivalent in one of them was declared for the other
    `queue_type`."""
    pairs = [
        (personal_queue_arguments(names, "classic"), personal_queue_arguments(names, "quorum")),
        (dead_letters_arguments("classic"), dead_letters_arguments("quorum")),
        (open_dead_letters_arguments("classic"), open_dead_letters_arguments("quorum")),
        (archive_queue_arguments(names, "classic"), archive_queue_arguments(names, "quorum")),
        (archive_requests_arguments("classic"), archive_requests_arguments("quorum")),
    ]
    return frozenset(
        key
        for classic, quorum in pairs
        for key in classic.keys() | quorum.keys()
        if classic.get(key) != quorum.get(key)
    )


def directory_arguments() -> QueueArguments:
    return {"x-queue-type": "stream"}


def shared_topology(names: Names, queue_type: QueueType = "classic") -> Topology:
    """What every user shares: NS.messages, the dead-letter path and the directory."""
    return Topology(
        exchanges=(
            ExchangeSpec(names.messages_exchange, "topic"),
            ExchangeSpec(names.dead_exchange, "fanout"),
        ),
        queues=(
            QueueSpec(names.dead_letters_queue, dead_letters_arguments(queue_type)),
            QueueSpec(names.directory_stream, directory_arguments()),
        ),
        bindings=(
            BindingSpec(names.dead_exchange, names.dead_letters_queue, ""),
            BindingSpec(names.messages_exchange, names.directory_stream, DIRECTORY_BINDING),
        ),
    )


def personal_topology(names: Names, user_id: str, queue_type: QueueType = "classic") -> Topology:
    """One user's inbox and receipts queue and their own bindings; a group's binding is
    added as the user joins it."""
    arguments = personal_queue_arguments(names, queue_type)
    inbox, receipts = names.inbox_queue(user_id), names.receipts_queue(user_id)
    return Topology(
        exchanges=(),
        queues=(QueueSpec(inbox, arguments), QueueSpec(receipts, arguments)),
        bindings=(
            BindingSpec(names.messages_exchange, inbox, user_key(user_id)),
            BindingSpec(names.messages_exchange, receipts, receipt_key(user_id)),
        ),
    )


def archive_topology(names: Names, queue_type: QueueType = "classic") -> Topology:
    """The archive's two queues and their bindings on NS.messages (which
    `shared_topology` declares): every chat message into NS.archive, the requests into
    NS.archive.requests. `chat-tui admin init` declares them in accounts mode, the
    archive itself in open mode."""
    archive, requests = names.archive_queue, names.archive_requests_queue
    return Topology(
        exchanges=(),
        queues=(
            QueueSpec(archive, archive_queue_arguments(names, queue_type)),
            QueueSpec(requests, archive_requests_arguments(queue_type)),
        ),
        bindings=(
            *(BindingSpec(names.messages_exchange, archive, key) for key in ARCHIVE_BINDINGS),
            BindingSpec(names.messages_exchange, requests, ARCHIVE_REQUEST_KEY),
        ),
    )
