"""Conversation keys: how the local cache and the faces name a group chat or a DM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chat_tui.protocol.ids import validate_id
from chat_tui.protocol.models import SendMessage

ConversationKind = Literal["group", "dm"]


@dataclass(frozen=True, order=True)
class Conversation:
    """A group (`name` is the group ID) or a DM (`name` is the other user's ID)."""

    kind: ConversationKind
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def group(cls, group_id: str) -> Conversation:
        return cls("group", validate_id(group_id, "group ID"))

    @classmethod
    def dm(cls, user_id: str) -> Conversation:
        return cls("dm", validate_id(user_id, "user ID"))

    @classmethod
    def parse(cls, key: str) -> Conversation:
        kind, _, name = key.partition(":")
        if kind == "group":
            return cls.group(name)
        if kind == "dm":
            return cls.dm(name)
        raise ValueError(f"not a conversation key: {key!r}")

    @classmethod
    def of_message(cls, message: SendMessage, me: str) -> Conversation:
        """The conversation a message belongs to, as seen by user `me`."""
        if message.group_id is not None:
            return cls("group", message.group_id)
        peer = message.recipient_id if message.sender_id == me else message.sender_id
        assert peer is not None
        return cls("dm", peer)

    def __str__(self) -> str:
        return f"#{self.name}" if self.kind == "group" else f"@{self.name}"
