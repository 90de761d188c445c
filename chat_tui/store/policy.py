"""What the store asks of the client core: the decisions it applies inside its
transactions. The core implements `CachePolicy`; the store only runs the SQL, so that a
receipt is still queued in the same transaction as what it acknowledges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from chat_tui.protocol.outgoing import Outgoing
from chat_tui.store.records import MessageStatus, StoredMessage


@dataclass(frozen=True, slots=True)
class ReceiptToQueue:
    """A receipt for the outbox."""

    outgoing: Outgoing
    coalesce_key: str
    """A newer receipt with the same key replaces this one while it waits to be sent."""


class CachePolicy(Protocol):
    """The rules of one user's cache."""

    def mentions_me(self, content: str) -> bool:
        """Whether a message from someone else mentions the cache's user."""
        ...

    def receipt(
        self,
        status: Literal["delivered", "read"],
        sender_id: str,
        conversation_key: str,
        message_id: str,
    ) -> ReceiptToQueue:
        """The receipt telling `sender_id` that everything of theirs in the conversation
        up to `message_id` has reached (or been read by) the cache's user."""
        ...

    def status_after_receipts(self, message: StoredMessage) -> MessageStatus:
        """An own message's status, given its delivered and read counts."""
        ...
