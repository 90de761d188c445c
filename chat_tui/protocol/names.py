"""Names of exchanges, queues and routing keys, all under one namespace prefix."""

from __future__ import annotations

from dataclasses import dataclass

from chat_tui.protocol.ids import NAMESPACE_PATTERN


def validate_namespace(value: str) -> str:
    """Return `value` unchanged, or raise ValueError: it prefixes every broker name."""
    if NAMESPACE_PATTERN.fullmatch(value) is None:
        raise ValueError(f"invalid namespace {value!r}")
    return value


@dataclass(frozen=True)
class Names:
    """Every broker name chat-tui uses, derived from the namespace `NS`."""

    namespace: str

    def __post_init__(self) -> None:
        validate_namespace(self.namespace)

    @property
    def messages_exchange(self) -> str:
        return f"{self.namespace}.messages"

    @property
    def dead_exchange(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def dead_letters_queue(self) -> str:
        return f"{self.namespace}.dead-letters"

    @property
    def directory_stream(self) -> str:
        return f"{self.namespace}.directory"

    def inbox_queue(self, user_id: str) -> str:
        return f"{self.namespace}.inbox.{user_id}"

    def receipts_queue(self, user_id: str) -> str:
        return f"{self.namespace}.receipts.{user_id}"

    @property
    def archive_queue(self) -> str:
        """Every group message and DM, for the archive's workers to store."""
        return f"{self.namespace}.archive"

    @property
    def archive_requests_queue(self) -> str:
        """History and search requests, served by the same workers."""
        return f"{self.namespace}.archive.requests"


# Routing keys do not carry the namespace: the exchange already does.
def group_key(group_id: str) -> str:
    return f"group.{group_id}"


def user_key(user_id: str) -> str:
    return f"user.{user_id}"


def receipt_key(user_id: str) -> str:
    return f"receipt.{user_id}"


def directory_user_key(user_id: str) -> str:
    return f"directory.user.{user_id}"


def directory_group_key(group_id: str) -> str:
    return f"directory.group.{group_id}"


DIRECTORY_BINDING = "directory.#"
ARCHIVE_BINDINGS = ("group.#", "user.#")
"""What NS.archive is bound to on NS.messages: every chat message, none of the receipts."""
ARCHIVE_REQUEST_KEY = "archive.request"
"""Clients publish history and search requests to NS.messages under this key."""
