"""The contract between the core and a face (the Textual app or the CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chat_tui.store.records import StatusChange, StoredMessage
from chat_tui.transport.connection import LinkState


@dataclass(frozen=True)
class ClientStatus:
    """What the header shows: the link, the next retry, and what still waits to go out."""

    state: LinkState
    next_retry_at: datetime | None = None
    error: str | None = None
    outbox_size: int = 0
    standby: bool = False
    """Another instance of this user holds the inbox; this one only waits."""


class Sink(Protocol):
    """A face. `show` must return only once the messages are on screen (or counted):
    the core acks them to the broker after that, and not before."""

    async def show(self, messages: Sequence[StoredMessage]) -> None: ...

    def status_changed(self, changes: Sequence[StatusChange]) -> None: ...

    def connection_changed(self, status: ClientStatus) -> None: ...

    def directory_changed(self) -> None: ...

    def problem(self, text: str) -> None: ...


class NullSink:
    """A sink that shows nothing; for commands that only send."""

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
