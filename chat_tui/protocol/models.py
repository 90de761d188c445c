"""Pydantic models of the three wire messages, and the one place that decodes bodies.

Receivers ignore unknown fields so that later protocol versions can add some, and they
ignore a message of a later version's type (an `UnknownMessage`, see `decode()`) so that
later versions can add types; everything else (missing fields, wrong types, limits, a
`type` that is neither known nor a later version's) is a `MalformedMessageError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_serializer,
    model_validator,
)

from chat_tui.protocol.ids import ID_PATTERN
from chat_tui.protocol.names import directory_group_key, directory_user_key

MAX_CONTENT_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
CONTENT_TYPE = "application/json"
APP_ID = "chat-tui"

SEND_MESSAGE: Final = "SEND_MESSAGE"
RECEIVE_MESSAGE: Final = "RECEIVE_MESSAGE"
DIRECTORY_EVENT: Final = "DIRECTORY_EVENT"
KNOWN_TYPES: Final = frozenset({SEND_MESSAGE, RECEIVE_MESSAGE, DIRECTORY_EVENT})

TYPE_NAME_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
"""What a later version's `type` looks like: the three known ones do."""
FIRST_GROWING_VERSION = 2
"""The protocol version from which receivers ignore the types they do not know."""


class MalformedMessageError(ValueError):
    """A body that is not a valid protocol message; it is dead-lettered, never retried."""


def content_problem(text: str) -> str | None:
    """What is wrong with `text` as the content of a chat message, or None."""
    if not text.strip():
        return "content is empty"
    if len(text.encode("utf-8")) > MAX_CONTENT_BYTES:
        return f"content is over {MAX_CONTENT_BYTES} bytes of UTF-8"
    return None


def _check_content(text: str) -> str:
    problem = content_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UserId = Annotated[str, Field(pattern=ID_PATTERN.pattern)]
GroupId = Annotated[str, Field(pattern=ID_PATTERN.pattern)]
Content = Annotated[str, AfterValidator(_check_content)]
Timestamp = Annotated[datetime, AfterValidator(_utc)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class WireModel(BaseModel):
    """A wire body: strict, frozen, and ignoring the fields of later versions."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    @field_serializer("timestamp", check_fields=False)
    def _timestamp_iso(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def to_body(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class SendMessage(WireModel):
    """A chat message to a group (`group_id`) or to one user (`recipient_id`)."""

    type: Literal["SEND_MESSAGE"] = SEND_MESSAGE
    message_id: UUID
    sender_id: UserId
    group_id: GroupId | None = None
    recipient_id: UserId | None = None
    content: Content
    timestamp: Timestamp = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _exactly_one_target(self) -> SendMessage:
        if (self.group_id is None) == (self.recipient_id is None):
            raise ValueError("exactly one of group_id and recipient_id must be set")
        return self

    @field_serializer("message_id")
    def _message_id_str(self, value: UUID) -> str:
        return str(value)


class ReceiveMessage(WireModel):
    """A cumulative receipt: `recipient_id` has `status` every message up to `message_id`."""

    type: Literal["RECEIVE_MESSAGE"] = RECEIVE_MESSAGE
    recipient_id: UserId
    message_id: UUID
    status: Literal["delivered", "read"]
    timestamp: Timestamp = Field(default_factory=utc_now)

    @field_serializer("message_id")
    def _message_id_str(self, value: UUID) -> str:
        return str(value)


DirectoryEventKind = Literal["registered", "created", "joined", "left"]


class DirectoryEvent(WireModel):
    """A change to the set of users, groups or memberships, kept in the directory stream."""

    type: Literal["DIRECTORY_EVENT"] = DIRECTORY_EVENT
    event: DirectoryEventKind
    user_id: UserId
    group_id: GroupId | None = None
    timestamp: Timestamp = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _group_when_needed(self) -> DirectoryEvent:
        if self.event == "registered" and self.group_id is not None:
            raise ValueError("a registered event has no group_id")
        if self.event != "registered" and self.group_id is None:
            raise ValueError(f"a {self.event} event needs a group_id")
        return self

    @property
    def routing_key(self) -> str:
        """Where it is published: under its group, or under its user for `registered`."""
        if self.group_id is not None:
            return directory_group_key(self.group_id)
        return directory_user_key(self.user_id)


@dataclass(frozen=True)
class UnknownMessage:
    """A well-formed message of a type this version does not know (see `decode()`):
    receivers ack it, count it and ignore it."""

    type: str
    protocol_version: int


WireMessage = SendMessage | ReceiveMessage | DirectoryEvent
_wire_adapter: TypeAdapter[WireMessage] = TypeAdapter(
    Annotated[WireMessage, Field(discriminator="type")]
)


def _later_version_envelope(text: str) -> UnknownMessage | None:
    """The envelope of a later version's message type, or None if `text` is not one."""
    try:
        envelope = json.loads(text)
    except ValueError:
        return None
    if not isinstance(envelope, dict):
        return None
    kind, version = envelope.get("type"), envelope.get("protocol_version")
    if not isinstance(kind, str) or kind in KNOWN_TYPES or not TYPE_NAME_PATTERN.fullmatch(kind):
        return None
    # bool is an int to Python, not to JSON.
    if type(version) is not int or version < FIRST_GROWING_VERSION:
        return None
    return UnknownMessage(kind, version)


def decode(body: bytes) -> WireMessage | UnknownMessage:
    """Decode and validate one body; raise MalformedMessageError for anything invalid.

    The envelope rule: a body is a message of a type this version does not know, and is
    returned as an `UnknownMessage` rather than refused, when it is at most 64 KiB of
    UTF-8 JSON text holding an object whose `type` is a string of 1 to 64 upper-case
    letters, digits and underscores, starting with a letter, other than SEND_MESSAGE,
    RECEIVE_MESSAGE and DIRECTORY_EVENT, and whose `protocol_version` is an integer of
    at least 2. Nothing else of it is looked at. Any other body that is not a valid
    SEND_MESSAGE, RECEIVE_MESSAGE or DIRECTORY_EVENT is malformed: a body of a known
    type that breaks its schema, and one of an unknown type without a `protocol_version`
    (from a version 1 client such a type is a mistake, kept in the dead letters to be
    looked at)."""
    text = body_text(body)
    try:
        return _wire_adapter.validate_json(text)
    except ValidationError as exc:
        unknown = _later_version_envelope(text)
        if unknown is not None:
            return unknown
        raise malformed(exc) from None


def body_text(body: bytes) -> str:
    """`body` as text, or MalformedMessageError if it is over the limit or not UTF-8."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedMessageError(f"body is {len(body)} bytes, over {MAX_BODY_BYTES}")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessageError(f"body is not UTF-8: {exc}") from None


def malformed(exc: ValidationError) -> MalformedMessageError:
    """The first of a validation's errors, where it is and what it says."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return MalformedMessageError(f"{where}: {first.get('msg')}")
