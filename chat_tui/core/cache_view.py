"""The read side of the cache, as the faces need it: a face never holds a `Store`.

`HistorySource` is all a message list needs: pages of one conversation by seq.
`CacheView` provides it, with the conversation list, message details, the directory
as the cache knows it, and the few preferences a face keeps in the cache.
"""

from __future__ import annotations

from typing import Protocol

from chat_tui.core.records import ConversationSummary, MessageDetails, StoredMessage
from chat_tui.protocol.conversations import Conversation
from chat_tui.store import Store


class HistorySource(Protocol):
    """Pages of one conversation, in ascending seq order."""

    async def history(
        self,
        conversation: Conversation,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[StoredMessage]:
        """The newest `limit` messages before `before_seq` (or the newest of all), or
        with `after_seq` the oldest `limit` after it."""
        ...


class CacheView:
    """What the faces read from the local cache."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def conversations(self) -> list[ConversationSummary]:
        """Every conversation to list, with its unread count and read mark."""
        return await self._store.conversations()

    async def history(
        self,
        conversation: Conversation,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[StoredMessage]:
        return await self._store.history(
            conversation, before_seq=before_seq, after_seq=after_seq, limit=limit
        )

    async def around(
        self, conversation: Conversation, seq: int, *, before: int = 50, after: int = 50
    ) -> list[StoredMessage]:
        """The window around the message at `seq`, ascending, the message included: to
        open a conversation at a search result."""
        earlier = await self._store.history(conversation, before_seq=seq + 1, limit=before + 1)
        later = await self._store.history(conversation, after_seq=seq, limit=after)
        return earlier + later

    async def at_beginning(self, conversation: Conversation) -> bool:
        """The archive said nothing is older than what the cache holds of it."""
        return (await self._store.archive_position(conversation)).at_beginning

    async def message_details(self, message: StoredMessage) -> MessageDetails:
        """The message as stored now (its status may have moved on since it was drawn),
        whom it went to, and who received and read it."""
        current = await self._store.get_message(message.message_id) or message
        conversation = current.conversation
        if conversation.kind == "group":
            members = await self._store.members(conversation.name)
            recipients = [m for m in members if m != self._store.me]
        else:
            recipients = [conversation.name]
        receipts = await self._store.receipt_details(current.message_id)
        return MessageDetails(current, recipients, receipts)

    async def users(self) -> list[str]:
        """Every user the directory knows."""
        return await self._store.users()

    async def groups(self) -> list[str]:
        """Every group the directory knows."""
        return await self._store.groups()

    async def members(self, group: str) -> list[str]:
        """The group's members as the cache knows them (none for a group it does not
        know: a title can show that, where `ChatClient.members` refuses it)."""
        return await self._store.members(group)

    async def preference(self, key: str) -> str | None:
        """A face's setting kept with the cache (the theme, the open conversation)."""
        return await self._store.get_meta(key)

    async def set_preference(self, key: str, value: str) -> None:
        await self._store.set_meta(key, value)
