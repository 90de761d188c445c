"""The protocol layer on its own: ID rules, conversation keys, broker names, decoding."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.ids import InvalidIdError, is_valid_id, validate_id
from chat_tui.protocol.models import (
    DirectoryEvent,
    MalformedMessageError,
    ReceiveMessage,
    SendMessage,
    decode,
)
from chat_tui.protocol.names import Names, directory_group_key, group_key, receipt_key, user_key
from chat_tui.protocol.outgoing import Outgoing


@pytest.mark.parametrize("value", ["a", "bob", "0", "dev-ops", "a_b", "x" * 32, "9lives"])
def test_valid_ids(value: str) -> None:
    assert is_valid_id(value) and validate_id(value) == value


@pytest.mark.parametrize(
    "value", ["", "Bob", "dev.ops", "a b", "-bob", "_bob", "x" * 33, "a*", "a#", "é", "bob\n"]
)
def test_ids_that_could_break_a_routing_key_are_refused(value: str) -> None:
    assert not is_valid_id(value)
    with pytest.raises(InvalidIdError, match="invalid user ID"):
        validate_id(value, "user ID")


def test_conversation_keys_and_labels() -> None:
    assert Conversation.group("team").key == "group:team"
    assert str(Conversation.group("team")) == "#team"
    assert str(Conversation.dm("bob")) == "@bob"
    assert Conversation.parse("dm:bob") == Conversation.dm("bob")
    with pytest.raises(ValueError):
        Conversation.parse("channel:x")
    dm = SendMessage(message_id=uuid.uuid4(), sender_id="alice", recipient_id="bob", content="x")
    assert Conversation.of_message(dm, "bob") == Conversation.dm("alice")
    assert Conversation.of_message(dm, "alice") == Conversation.dm("bob")


def test_broker_names_follow_the_namespace() -> None:
    names = Names("chat")
    assert names.messages_exchange == "chat.messages"
    assert names.dead_exchange == "chat.dead"
    assert names.dead_letters_queue == "chat.dead-letters"
    assert names.directory_stream == "chat.directory"
    assert names.inbox_queue("bob") == "chat.inbox.bob"
    assert names.receipts_queue("bob") == "chat.receipts.bob"
    assert (group_key("g"), user_key("u"), receipt_key("u")) == ("group.g", "user.u", "receipt.u")
    assert directory_group_key("g") == "directory.group.g"
    with pytest.raises(ValueError):
        Names("bad namespace")


def test_outgoing_messages_get_their_routing_keys_and_amqp_ids() -> None:
    group = SendMessage(message_id=uuid.uuid4(), sender_id="alice", group_id="team", content="x")
    out = Outgoing.chat(group)
    assert (out.routing_key, out.message_type, out.amqp_message_id) == (
        "group.team",
        "SEND_MESSAGE",
        str(group.message_id),
    )
    receipt = ReceiveMessage(recipient_id="bob", message_id=group.message_id, status="read")
    out = Outgoing.receipt(receipt, "alice")
    assert out.routing_key == "receipt.alice"
    assert out.amqp_message_id != str(group.message_id)
    event = DirectoryEvent(event="registered", user_id="bob")
    assert Outgoing.directory(event).routing_key == "directory.user.bob"


def valid_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "SEND_MESSAGE",
        "message_id": str(uuid.uuid4()),
        "sender_id": "alice",
        "group_id": "team",
        "recipient_id": None,
        "content": "hi",
        "timestamp": "2026-11-27T07:10:31Z",
    }
    body.update(changes)
    return body


def test_a_valid_body_round_trips() -> None:
    body = valid_body()
    decoded = decode(json.dumps(body).encode())
    assert isinstance(decoded, SendMessage)
    assert json.loads(decoded.to_body()) == body
    # A timestamp with another offset goes back out as the same instant in UTC, with "Z".
    elsewhere = valid_body(timestamp="2026-11-27T09:10:31+02:00")
    decoded = decode(json.dumps(elsewhere).encode())
    assert isinstance(decoded, SendMessage)
    assert json.loads(decoded.to_body()) == {**elsewhere, "timestamp": "2026-11-27T07:10:31Z"}
    # Unknown fields are ignored, so later versions can add some.
    assert isinstance(decode(json.dumps(valid_body(priority=3)).encode()), SendMessage)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff",
        b"[]",
        json.dumps(valid_body(type="NOPE")).encode(),
        json.dumps(valid_body(content="")).encode(),
        json.dumps(valid_body(content="é" * 8193)).encode(),
        json.dumps(valid_body(content=["x"])).encode(),
        json.dumps(valid_body(group_id=None)).encode(),
        json.dumps(valid_body(recipient_id="bob")).encode(),
        json.dumps(valid_body(sender_id="a.b")).encode(),
        json.dumps(valid_body(message_id=17)).encode(),
        json.dumps(valid_body(timestamp=12345)).encode(),
        json.dumps(valid_body(padding="p" * 70000)).encode(),
        json.dumps({"type": "RECEIVE_MESSAGE", "status": "seen"}).encode(),
        json.dumps({"type": "DIRECTORY_EVENT", "event": "joined", "user_id": "bob"}).encode(),
        json.dumps(
            {"type": "DIRECTORY_EVENT", "event": "registered", "user_id": "b", "group_id": "g"}
        ).encode(),
    ],
    # Named, not shown: the bodies hold fresh message IDs, and parallel workers must
    # collect the same test names.
    ids=[
        "not-json",
        "not-utf8",
        "a-list",
        "unknown-type",
        "empty-content",
        "content-too-long",
        "content-not-text",
        "no-target",
        "two-targets",
        "bad-sender-id",
        "bad-message-id",
        "bad-timestamp",
        "body-too-long",
        "unknown-receipt-status",
        "join-without-group",
        "registered-with-group",
    ],
)
def test_invalid_bodies_are_malformed_not_crashes(body: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        decode(body)
