"""The contract between the core and a face (the Textual app or the CLI)."""

from __future__ import annotations

from collections.abc import Sequence

from chat_tui.core.records import StatusChange, StoredMessage
from chat_tui.core.status import ClientStatus
from chat_tui.protocol.conversations import Conversation


class Sink:
    """A face. Every callback does nothing by default, so a face overrides only what it
    shows, and a new event does not force an edit of every face.

    `show` must return only once the messages are on screen (or counted): the core acks
    them to the broker after that, and not before. This default shows nothing: use it
    as is for commands that only send."""

    async def show(self, messages: Sequence[StoredMessage]) -> None:
        return None

    def status_changed(self, changes: Sequence[StatusChange]) -> None:
        return None

    def connection_changed(self, status: ClientStatus) -> None:
        return None

    def directory_changed(self) -> None:
        return None

    def problem(self, text: str) -> None:
        return None

    def history_filled(self, conversation: Conversation, count: int) -> None:
        """`count` messages came into the history of `conversation` from the archive (a
        join, a new device, scrolling up, opening a search result): reload what is shown
        of it. They are not news: never passed to `show`, never unread."""
        return None

    def archive_unavailable(self, text: str) -> None:
        """No archive answers; `text` says so plainly. Called once per client."""
        return None
