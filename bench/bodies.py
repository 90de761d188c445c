"""Valid chat bodies of a fixed size, as a sender's client would publish them."""

from __future__ import annotations

import uuid

from chat_tui.protocol.models import SendMessage

CONTENT_CHARS = 120
"""A typical chat line; every metric uses bodies of this content length."""


def content(index: int, size: int = CONTENT_CHARS) -> str:
    prefix = f"message {index} "
    return (prefix + "x" * size)[:size]


def group_body(sender: str, group_id: str, index: int, size: int = CONTENT_CHARS) -> bytes:
    """A SEND_MESSAGE body for a group, exactly what `ChatClient.send` would publish."""
    return SendMessage(
        message_id=uuid.uuid4(), sender_id=sender, group_id=group_id, content=content(index, size)
    ).to_body()


def group_bodies(sender: str, group_id: str, count: int, size: int = CONTENT_CHARS) -> list[bytes]:
    return [group_body(sender, group_id, i, size) for i in range(count)]
