"""The contract between the core and a face (the Textual app or the CLI)."""

from __future__ import annotations

from collections.abc import Sequence

from chat_tui.core.records import StatusChange, StoredMessage
from chat_tui.core.status import ClientStatus


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
