"""The rules the cache applies for its user: what mentions them, which receipts they
send, and when an own message counts as delivered or read. The store runs them inside
its transactions (see `chat_tui.store.policy.CachePolicy`); `open_cache` opens a user's
store with that user's rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from uuid import UUID

from chat_tui.protocol.models import ReceiveMessage
from chat_tui.protocol.outgoing import Outgoing
from chat_tui.store import Store
from chat_tui.store.policy import ReceiptToQueue
from chat_tui.store.records import STATUS_RANK, MessageStatus, StoredMessage


class ChatCachePolicy:
    """The `CachePolicy` of user `me`."""

    def __init__(self, me: str) -> None:
        self.me = me
        self._mention = re.compile(rf"(?<![\w-])@?{re.escape(me)}(?![\w-])", re.IGNORECASE)
        self._me_folded = me.casefold()

    def mentions_me(self, content: str) -> bool:
        """The name as a word of its own, with or without an @, in any case."""
        # The substring test first: most messages do not contain the name at all.
        return self._me_folded in content.casefold() and bool(self._mention.search(content))

    def receipt(
        self,
        status: Literal["delivered", "read"],
        sender_id: str,
        conversation_key: str,
        message_id: str,
    ) -> ReceiptToQueue:
        """Receipts are cumulative, so one per sender and conversation is enough: a
        newer one replaces the one still waiting (the coalesce key)."""
        receipt = ReceiveMessage(recipient_id=self.me, message_id=UUID(message_id), status=status)
        return ReceiptToQueue(
            Outgoing.receipt(receipt, sender_id), f"{status}:{sender_id}:{conversation_key}"
        )

    def status_after_receipts(self, message: StoredMessage) -> MessageStatus:
        """Read once every recipient has read it, delivered once every recipient has it.
        Only a message on its way moves: a failed one stays failed."""
        if message.status not in STATUS_RANK:
            return message.status
        wanted = max(message.recipient_count, 1)
        if message.read_count >= wanted:
            return "read"
        if message.delivered_count >= wanted:
            return "delivered"
        return "sent"


def cache_of(path: Path, me: str) -> Store:
    """The cache of user `me`, with the rules of `me`, not yet opened."""
    return Store(path, me, ChatCachePolicy(me))


async def open_cache(path: Path, me: str) -> Store:
    """The cache of user `me`, with the rules of `me`, opened."""
    store = cache_of(path, me)
    await store.open()
    return store
