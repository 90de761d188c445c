"""Who sent a delivery: the receivers' checks of its AMQP `user_id` against its body.

On a deployment with accounts the broker refuses a publish whose `user_id` is not the
publisher's own login, so a delivery's `user_id` names the account that sent it, or is
missing. What the broker cannot see is whether the body agrees: an account may publish,
in its own name, a body that claims someone else as its author. These checks catch that,
whatever client sent it. In open mode everyone shares one login, so there is nothing to
check against and receivers skip them (`verify_senders` is False).

Each returns what is wrong, or None.
"""

from __future__ import annotations

from chat_tui.protocol.models import DirectoryEvent, ReceiveMessage, SendMessage


def _claimed_by(user_id: str | None, claimed: str, what: str) -> str | None:
    if user_id is None:
        return f"{what} {claimed!r} without a user_id"
    if user_id != claimed:
        return f"{what} {claimed!r} published by {user_id!r}"
    return None


def chat_sender_problem(user_id: str | None, message: SendMessage) -> str | None:
    """A chat message must come from its `sender_id`."""
    return _claimed_by(user_id, message.sender_id, "a message from")


def receipt_sender_problem(user_id: str | None, receipt: ReceiveMessage) -> str | None:
    """A receipt must come from its `recipient_id`. (Whether that user was sent the
    message at all takes the cache, which keeps each own message's recipients.)"""
    return _claimed_by(user_id, receipt.recipient_id, "a receipt of")


def receipt_recipient_problem(receipt: ReceiveMessage) -> str:
    """What is wrong with a receipt the cache did not count: it names a message that was
    not sent to its `recipient_id` (a later member of the group, or a stranger)."""
    return f"a receipt of {receipt.recipient_id!r}, who was not sent {receipt.message_id}"


def directory_sender_problem(
    user_id: str | None, routing_key: str, event: DirectoryEvent
) -> str | None:
    """A directory event must come from its `user_id`, routed under its own key: the
    broker's topic permissions grant `directory.user.<login>` to that login alone."""
    if routing_key != event.routing_key:
        return f"a {event.event} event routed as {routing_key!r}, not {event.routing_key!r}"
    return _claimed_by(user_id, event.user_id, f"a {event.event} event of")
