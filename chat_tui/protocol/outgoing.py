"""What a client publishes: a wire message with its routing key and AMQP message ID."""

from __future__ import annotations

from dataclasses import dataclass

from chat_tui.protocol.ids import new_message_id
from chat_tui.protocol.models import DirectoryEvent, ReceiveMessage, SendMessage, WireMessage
from chat_tui.protocol.names import (
    directory_group_key,
    directory_user_key,
    group_key,
    receipt_key,
    user_key,
)


@dataclass(frozen=True)
class Outgoing:
    """One publish: the routing key, the body, and the AMQP properties that vary."""

    routing_key: str
    message_type: str
    amqp_message_id: str
    body: bytes

    @classmethod
    def chat(cls, message: SendMessage) -> Outgoing:
        if message.group_id is not None:
            key = group_key(message.group_id)
        else:
            assert message.recipient_id is not None
            key = user_key(message.recipient_id)
        return cls._of(key, message, str(message.message_id))

    @classmethod
    def receipt(cls, message: ReceiveMessage, original_sender: str) -> Outgoing:
        return cls._of(receipt_key(original_sender), message, new_message_id())

    @classmethod
    def directory(cls, event: DirectoryEvent) -> Outgoing:
        if event.group_id is not None:
            key = directory_group_key(event.group_id)
        else:
            key = directory_user_key(event.user_id)
        return cls._of(key, event, new_message_id())

    @classmethod
    def _of(cls, routing_key: str, message: WireMessage, amqp_id: str) -> Outgoing:
        return cls(routing_key, message.type, amqp_id, message.to_body())
