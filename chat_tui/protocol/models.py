"""Pydantic models of the three wire messages, and the one place that decodes bodies.

Receivers ignore unknown fields so that later protocol versions can add some; everything
else (missing fields, wrong types, limits, unknown `type`) is a `MalformedMessageError`.
"""

from __future__ import annotations

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

MAX_CONTENT_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
CONTENT_TYPE = "application/json"
APP_ID = "chat-tui"

SEND_MESSAGE: Final = "SEND_MESSAGE"
RECEIVE_MESSAGE: Final = "RECEIVE_MESSAGE"
DIRECTORY_EVENT: Final = "DIRECTORY_EVENT"


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


class _WireModel(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    @field_serializer("timestamp", check_fields=False)
    def _timestamp_iso(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def to_body(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class SendMessage(_WireModel):
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


class ReceiveMessage(_WireModel):
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


class DirectoryEvent(_WireModel):
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


WireMessage = SendMessage | ReceiveMessage | DirectoryEvent
_wire_adapter: TypeAdapter[WireMessage] = TypeAdapter(
    Annotated[WireMessage, Field(discriminator="type")]
)


def decode(body: bytes) -> WireMessage:
    """Decode and validate one body; raise MalformedMessageError for anything invalid."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedMessageError(f"body is {len(body)} bytes, over {MAX_BODY_BYTES}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessageError(f"body is not UTF-8: {exc}") from None
    try:
        return _wire_adapter.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise MalformedMessageError(f"{where}: {first.get('msg')}") from None
