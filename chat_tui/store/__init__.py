"""The local SQLite cache: messages, conversations, receipts, outbox and directory.

`Store` (in store.py) is the one way in; the other modules are its tables, each a set
of functions on the connection so that one transaction can span several."""

from chat_tui.store.policy import CachePolicy, ReceiptToQueue
from chat_tui.store.records import (
    ConversationSummary,
    IngestResult,
    MemberReceipt,
    MessageStatus,
    OutboxItem,
    SendRefused,
    StatusChange,
    StoredMessage,
)
from chat_tui.store.store import Store

__all__ = [
    "CachePolicy",
    "ConversationSummary",
    "IngestResult",
    "MemberReceipt",
    "MessageStatus",
    "OutboxItem",
    "ReceiptToQueue",
    "SendRefused",
    "StatusChange",
    "Store",
    "StoredMessage",
]
