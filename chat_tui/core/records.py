"""The records the core hands its faces.

They are the store's records; the faces import them from here, so that no face
depends on the store, and the core can change what it reads from without them."""

from __future__ import annotations

from dataclasses import dataclass

from chat_tui.store.records import (
    ConversationSummary,
    MemberReceipt,
    MessageStatus,
    StatusChange,
    StoredMessage,
)

__all__ = [
    "ConversationSummary",
    "MemberReceipt",
    "MessageDetails",
    "MessageStatus",
    "StatusChange",
    "StoredMessage",
]


@dataclass(frozen=True)
class MessageDetails:
    """One message with who it went to and, for own messages, who received and read it."""

    message: StoredMessage
    recipients: list[str]
    receipts: list[MemberReceipt]
