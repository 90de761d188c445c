"""History cursors: a position in a conversation, (timestamp, message_id), as an opaque
string. The same position continues a page older or newer, on either backend."""

from __future__ import annotations

import base64
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from chat_tui.protocol.models import SendMessage

_VERSION = "a1."
_LAYOUT = struct.Struct(">q16s")  # microseconds since the epoch, then the UUID's bytes
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TEXT = re.compile(r"[A-Za-z0-9_-]{32}")  # 24 bytes in unpadded base64url


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: exact, and how SQLite stores a message's time."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, order=True)
class Position:
    """Where a message sits in its conversation's order: by time, then message_id."""

    micros: int
    message_id: UUID

    @classmethod
    def of(cls, message: SendMessage) -> Position:
        return cls(to_micros(message.timestamp), message.message_id)

    @property
    def timestamp(self) -> datetime:
        return from_micros(self.micros)

    def encode(self) -> str:
        raw = _LAYOUT.pack(self.micros, self.message_id.bytes)
        return _VERSION + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        """The position a cursor of ours holds; ValueError for anything else."""
        text = cursor.removeprefix(_VERSION)
        if text == cursor or _TEXT.fullmatch(text) is None:
            raise ValueError("malformed cursor: not one this archive made")
        raw = base64.urlsafe_b64decode(text + "====")
        micros, id_bytes = _LAYOUT.unpack(raw)
        try:
            from_micros(micros)
        except OverflowError:
            raise ValueError("malformed cursor: its time is out of range") from None
        return cls(micros, UUID(bytes=id_bytes))


def history_cursor(message: SendMessage) -> str:
    """The cursor at `message`: pages older or newer than it start after it."""
    return Position.of(message).encode()


def history_page(
    fetched: list[SendMessage], limit: int, older: bool
) -> tuple[list[SendMessage], str | None]:
    """A page from up to `limit + 1` messages read in the direction's order (newest
    first for older): the page oldest first, and the cursor on when there was more."""
    page = fetched[:limit]
    next_cursor = Position.of(page[-1]).encode() if len(fetched) > limit else None
    if older:
        page.reverse()
    return page, next_cursor
