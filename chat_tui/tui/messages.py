"""Messages that cross the app: what the core's sink callbacks become on the UI side."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from textual.message import Message

from chat_tui.core.records import StatusChange, StoredMessage
from chat_tui.core.status import ClientStatus
from chat_tui.protocol.conversations import Conversation


class BatchArrived(Message):
    """Stored messages to show; `applied` is resolved once they are drawn or counted."""

    def __init__(self, messages: Sequence[StoredMessage], applied: asyncio.Future[None]) -> None:
        super().__init__()
        self.messages = list(messages)
        self.applied = applied


class StatusesChanged(Message):
    """Own messages moved on: sent, delivered, read, failed."""

    def __init__(self, changes: Sequence[StatusChange]) -> None:
        super().__init__()
        self.changes = list(changes)


class ConnectionChanged(Message):
    """The header's state; only the latest matters, so a burst becomes one update."""

    def __init__(self, status: ClientStatus) -> None:
        super().__init__()
        self.status = status

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ConnectionChanged)


class DirectoryChanged(Message):
    """Users, groups or memberships changed."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DirectoryChanged)


class HistoryFilled(Message):
    """Messages of `conversation` came into the cache from the archive."""

    def __init__(self, conversation: Conversation) -> None:
        super().__init__()
        self.conversation = conversation

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HistoryFilled) and message.conversation == self.conversation


class ArchiveUnavailable(Message):
    """No archive answers: history from before is not available (said once)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ProblemReported(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
