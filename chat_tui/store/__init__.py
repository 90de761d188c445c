"""The local SQLite cache: messages, conversations, receipts, outbox and directory."""

from chat_tui.store.cache import Store
from chat_tui.store.records import (
    ConversationSummary,
    IngestResult,
    MemberReceipt,
    MessageStatus,
    OutboxItem,
    StatusChange,
    StoredMessage,
)

__all__ = [
    "ConversationSummary",
    "IngestResult",
    "MemberReceipt",
    "MessageStatus",
    "OutboxItem",
    "StatusChange",
    "Store",
    "StoredMessage",
]
