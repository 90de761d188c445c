"""The core's Sink for the Textual app: every callback becomes a message to the app.

`show` posts the batch with a future and returns only when the app has drawn it (or
counted it in the sidebar): the core acks to the broker after that, and not before.
It never blocks the event loop; it only awaits the future.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from textual.app import App

from chat_tui.core.records import StatusChange, StoredMessage
from chat_tui.core.sink import Sink
from chat_tui.core.status import ClientStatus
from chat_tui.protocol.conversations import Conversation
from chat_tui.tui.messages import (
    ArchiveUnavailable,
    BatchArrived,
    ConnectionChanged,
    DirectoryChanged,
    HistoryFilled,
    ProblemReported,
    StatusesChanged,
)


class AppSink(Sink):
    def __init__(self, app: App[Any]) -> None:
        self.app = app

    async def show(self, messages: Sequence[StoredMessage]) -> None:
        applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.app.post_message(BatchArrived(messages, applied)):
            raise RuntimeError("the app is closing; the messages stay in the broker")
        await applied

    def status_changed(self, changes: Sequence[StatusChange]) -> None:
        self.app.post_message(StatusesChanged(changes))

    def connection_changed(self, status: ClientStatus) -> None:
        self.app.post_message(ConnectionChanged(status))

    def directory_changed(self) -> None:
        self.app.post_message(DirectoryChanged())

    def problem(self, text: str) -> None:
        self.app.post_message(ProblemReported(text))

    def history_filled(self, conversation: Conversation, count: int) -> None:
        self.app.post_message(HistoryFilled(conversation))

    def archive_unavailable(self, text: str) -> None:
        self.app.post_message(ArchiveUnavailable(text))
