"""A stored row back into the SendMessage it was, the same on both backends."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from chat_tui.protocol.models import SendMessage

NUL_STAND_IN = "\ufffd"
"""PostgreSQL's text cannot hold U+0000; both backends keep it as U+FFFD, so that they
answer alike."""


def stored_content(message: SendMessage) -> str:
    return message.content.replace("\x00", NUL_STAND_IN)


def sorted_unique(messages: list[SendMessage]) -> list[SendMessage]:
    """One copy per message_id, in message_id order: two workers storing overlapping
    batches then take their row locks in the same order and never deadlock."""
    by_id = {m.message_id: m for m in reversed(messages)}  # the first copy wins
    return [by_id[key] for key in sorted(by_id)]


def unique_oldest_first(messages: list[SendMessage]) -> list[SendMessage]:
    """One copy per message_id, by sent time (then id): a single writer takes no row
    locks, and rows numbered in this order let search walk the newest first."""
    by_id = {m.message_id: m for m in reversed(messages)}  # the first copy wins
    return sorted(by_id.values(), key=lambda m: (m.timestamp, m.message_id))


def message_of(
    message_id: UUID,
    sender_id: str,
    group_id: str | None,
    recipient_id: str | None,
    content: str,
    timestamp: datetime,
) -> SendMessage:
    return SendMessage(
        message_id=message_id,
        sender_id=sender_id,
        group_id=group_id,
        recipient_id=recipient_id,
        content=content,
        timestamp=timestamp,
    )
