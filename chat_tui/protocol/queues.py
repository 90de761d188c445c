"""The exchanges, queues and bindings of docs/protocol.md as data: what the client
declares and what `chat-tui admin` provisions, so that the two cannot disagree. A queue
declared again with other arguments fails with PRECONDITION_FAILED."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chat_tui.protocol.names import DIRECTORY_BINDING, Names, receipt_key, user_key

ArgumentValue = str | int | bool
QueueArguments = dict[str, ArgumentValue]

DEAD_LETTERS_MAX_LENGTH = 100_000
"""A flood of bad bodies cannot fill the broker's disk: the oldest are dropped."""


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


def personal_queue_arguments(names: Names) -> QueueArguments:
    """Arguments of every inbox and receipts queue; they must match on every declare."""
    return {"x-dead-letter-exchange": names.dead_exchange, "x-single-active-consumer": True}


def dead_letters_arguments() -> QueueArguments:
    return {"x-max-length": DEAD_LETTERS_MAX_LENGTH}


def directory_arguments() -> QueueArguments:
    return {"x-queue-type": "stream"}


def shared_topology(names: Names) -> Topology:
    """What every user shares: NS.messages, the dead-letter path and the directory."""
    return Topology(
        exchanges=(
            ExchangeSpec(names.messages_exchange, "topic"),
            ExchangeSpec(names.dead_exchange, "fanout"),
        ),
        queues=(
            QueueSpec(names.dead_letters_queue, dead_letters_arguments()),
            QueueSpec(names.directory_stream, directory_arguments()),
        ),
        bindings=(
            BindingSpec(names.dead_exchange, names.dead_letters_queue, ""),
            BindingSpec(names.messages_exchange, names.directory_stream, DIRECTORY_BINDING),
        ),
    )


def personal_topology(names: Names, user_id: str) -> Topology:
    """One user's inbox and receipts queue and their own bindings; a group's binding is
    added as the user joins it."""
    arguments = personal_queue_arguments(names)
    inbox, receipts = names.inbox_queue(user_id), names.receipts_queue(user_id)
    return Topology(
        exchanges=(),
        queues=(QueueSpec(inbox, arguments), QueueSpec(receipts, arguments)),
        bindings=(
            BindingSpec(names.messages_exchange, inbox, user_key(user_id)),
            BindingSpec(names.messages_exchange, receipts, receipt_key(user_id)),
        ),
    )
