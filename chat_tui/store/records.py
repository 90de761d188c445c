"""Plain records that the store hands out (the faces read these, never SQL rows), and
the refusal it raises when an own message cannot be addressed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import ReceiveMessage

# Own messages go queued -> sent -> delivered -> read, or end as failed.
# Messages from others are "received".
MessageStatus = Literal["queued", "sent", "delivered", "read", "failed", "received"]
STATUS_RANK: dict[str, int] = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    """Local arrival order; history is ordered and paged by it."""
    message_id: str
    conversation: Conversation
    sender_id: str
    content: str
    sent_at: datetime
    outgoing: bool
    status: MessageStatus
    error: str | None = None
    recipient_count: int = 0
    delivered_count: int = 0
    read_count: int = 0


@dataclass(frozen=True)
class ConversationSummary:
    conversation: Conversation
    unread_count: int
    last_read_seq: int
    last_seq: int
    mentioned: bool
    last_activity: datetime | None


OutboxKind = Literal["message", "receipt", "directory"]


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    kind: OutboxKind
    routing_key: str
    message_type: str
    amqp_message_id: str
    body: bytes
    attempts: int


class SendRefusal(StrEnum):
    """Why an own message cannot be sent (checked when it is queued)."""

    UNKNOWN_USER = "unknown user"
    UNKNOWN_GROUP = "unknown group"
    NOT_A_MEMBER = "not a member"


class SendRefused(Exception):
    """An own message cannot go where it is addressed; nothing was written."""

    def __init__(self, reason: SendRefusal, target: str) -> None:
        super().__init__(f"{reason.value}: {target}")
        self.reason = reason
        self.target = target


@dataclass(frozen=True)
class StatusChange:
    """An own message whose status or receipt counts changed."""

    message_id: str
    conversation: Conversation
    status: MessageStatus
    delivered_count: int
    read_count: int
    recipient_count: int
    error: str | None = None

    @classmethod
    def of(cls, message: StoredMessage) -> StatusChange:
        """The status and receipt counts of `message` as it stands."""
        return cls(
            message_id=message.message_id,
            conversation=message.conversation,
            status=message.status,
            delivered_count=message.delivered_count,
            read_count=message.read_count,
            recipient_count=message.recipient_count,
            error=message.error,
        )


@dataclass(frozen=True)
class ReceiptsApplied:
    """What a batch of receipts changed, and which it did not count."""

    changes: list[StatusChange]
    not_recipients: list[ReceiveMessage]
    """From someone the message they name was not sent to: a later member of the group,
    or a stranger. Nothing was changed for them."""


@dataclass(frozen=True)
class MemberReceipt:
    member_id: str
    delivered_at: datetime | None
    read_at: datetime | None


@dataclass(frozen=True)
class IngestResult:
    """What one stored batch changed, in arrival order."""

    new_messages: list[StoredMessage]
    to_show: list[StoredMessage]
    """New messages, and redelivered ones that were stored but never shown."""
    duplicates: int
