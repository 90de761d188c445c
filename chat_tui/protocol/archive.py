"""The archive's wire messages: history and search requests, and their answers.

A client publishes a request to NS.messages with routing key `archive.request`
(`names.ARCHIVE_REQUEST_KEY`), `reply_to: amq.rabbitmq.reply-to` and a `correlation_id`;
an archive worker answers on direct reply-to with a `HISTORY_PAGE`, `SEARCH_RESULTS`,
`DM_PEERS` or `ARCHIVE_REFUSAL` carrying the same `correlation_id`. The messages are
protocol version 2 types, so a version 2 receiver that meets one in its inbox by mistake
ignores it.

Every answer stays under `MAX_BODY_BYTES`: the archive puts fewer messages on a page
rather than exceed it, and says where to go on with `next_cursor`.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, model_validator

from chat_tui.protocol.models import (
    GroupId,
    SendMessage,
    Timestamp,
    UserId,
    WireModel,
    body_text,
    malformed,
)

ARCHIVE_PROTOCOL_VERSION: Final = 2

HISTORY_REQUEST: Final = "HISTORY_REQUEST"
SEARCH_REQUEST: Final = "SEARCH_REQUEST"
DM_PEERS_REQUEST: Final = "DM_PEERS_REQUEST"
HISTORY_PAGE: Final = "HISTORY_PAGE"
SEARCH_RESULTS: Final = "SEARCH_RESULTS"
DM_PEERS: Final = "DM_PEERS"
ARCHIVE_REFUSAL: Final = "ARCHIVE_REFUSAL"

MAX_HISTORY_LIMIT = 200
"""The most messages one history page may ask for; the archive may send fewer."""
MAX_SEARCH_LIMIT = 100
MAX_QUERY_CHARS = 256
MAX_CURSOR_CHARS = 128
MAX_SNIPPET_CHARS = 300
MAX_DM_PEERS = 500
"""The most DM peers one answer lists: about 40 KB, under the body limit."""

HistoryDirection = Literal["older", "newer"]
RefusalReason = Literal["forbidden", "malformed", "too_large", "unavailable"]
"""`forbidden`: the requester may not read that conversation; `malformed`: the request
breaks this schema; `too_large`: the request is over the body limit; `unavailable`: the
archive cannot answer now (its database is down), ask again later."""


def _check_query(text: str) -> str:
    if not text.strip():
        raise ValueError("query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(f"query is over {MAX_QUERY_CHARS} characters")
    return text


Query = Annotated[str, AfterValidator(_check_query)]
Cursor = Annotated[str, Field(min_length=1, max_length=MAX_CURSOR_CHARS)]


class _ArchiveModel(WireModel):
    protocol_version: int = ARCHIVE_PROTOCOL_VERSION


class _OneConversation(_ArchiveModel):
    """A conversation as the requester sees it: a group, or the DM with `peer_id`."""

    group_id: GroupId | None = None
    peer_id: UserId | None = None


class HistoryRequest(_OneConversation):
    """A page of one conversation, `older` or `newer` than `cursor` (None: from the
    newest message back, or from the oldest forward)."""

    type: Literal["HISTORY_REQUEST"] = HISTORY_REQUEST
    requester_id: UserId
    cursor: Cursor | None = None
    direction: HistoryDirection = "older"
    limit: int = Field(default=50, ge=1, le=MAX_HISTORY_LIMIT)

    @model_validator(mode="after")
    def _exactly_one_conversation(self) -> HistoryRequest:
        if (self.group_id is None) == (self.peer_id is None):
            raise ValueError("exactly one of group_id and peer_id must be set")
        return self


class SearchRequest(_OneConversation):
    """A text search across every conversation the requester may read, or within one.
    `query` is plain words: quotes, operators and brackets are searched for as text."""

    type: Literal["SEARCH_REQUEST"] = SEARCH_REQUEST
    requester_id: UserId
    query: Query
    limit: int = Field(default=20, ge=1, le=MAX_SEARCH_LIMIT)

    @model_validator(mode="after")
    def _at_most_one_conversation(self) -> SearchRequest:
        if self.group_id is not None and self.peer_id is not None:
            raise ValueError("at most one of group_id and peer_id may be set")
        return self


class DmPeersRequest(_ArchiveModel):
    """The users the requester has DMs with in the archive, the most recent first: what
    a new device fills its DMs from."""

    type: Literal["DM_PEERS_REQUEST"] = DM_PEERS_REQUEST
    requester_id: UserId
    limit: int = Field(default=MAX_DM_PEERS, ge=1, le=MAX_DM_PEERS)


class HistoryPage(_ArchiveModel):
    """Messages in conversation order (oldest first) whichever the direction, and the
    cursor that continues in the request's direction (None: nothing further)."""

    type: Literal["HISTORY_PAGE"] = HISTORY_PAGE
    messages: tuple[SendMessage, ...]
    next_cursor: Cursor | None = None


class SearchHit(WireModel):
    """One matching message; its conversation is the message's own (group_id, or the
    DM between sender_id and recipient_id). `snippet` is plain text around the match."""

    message: SendMessage
    snippet: Annotated[str, Field(max_length=MAX_SNIPPET_CHARS)]
    rank: float
    """Higher is better; only the order within one answer means anything."""


class SearchResults(_ArchiveModel):
    type: Literal["SEARCH_RESULTS"] = SEARCH_RESULTS
    hits: tuple[SearchHit, ...]


class DmPeer(WireModel):
    peer_id: UserId
    """The other party (the requester's own ID for notes to self)."""
    last_at: Timestamp
    """The `timestamp` of the newest message between the two in the archive."""


class DmPeers(_ArchiveModel):
    type: Literal["DM_PEERS"] = DM_PEERS
    peers: tuple[DmPeer, ...]
    """The most recent first, at most the request's `limit`."""


class ArchiveRefusal(_ArchiveModel):
    """The archive will not answer this request: never an empty page in its place."""

    type: Literal["ARCHIVE_REFUSAL"] = ARCHIVE_REFUSAL
    reason: RefusalReason
    detail: Annotated[str, Field(max_length=500)]


ArchiveRequest = HistoryRequest | SearchRequest | DmPeersRequest
ArchiveAnswer = HistoryPage | SearchResults | DmPeers | ArchiveRefusal

_request_adapter: TypeAdapter[ArchiveRequest] = TypeAdapter(
    Annotated[ArchiveRequest, Field(discriminator="type")]
)
_answer_adapter: TypeAdapter[ArchiveAnswer] = TypeAdapter(
    Annotated[ArchiveAnswer, Field(discriminator="type")]
)


def decode_request(body: bytes) -> ArchiveRequest:
    """A HISTORY_REQUEST, SEARCH_REQUEST or DM_PEERS_REQUEST; MalformedMessageError for
    anything else."""
    try:
        return _request_adapter.validate_json(body_text(body))
    except ValidationError as exc:
        raise malformed(exc) from None


def decode_answer(body: bytes) -> ArchiveAnswer:
    """A HISTORY_PAGE, SEARCH_RESULTS, DM_PEERS or ARCHIVE_REFUSAL; MalformedMessageError
    otherwise."""
    try:
        return _answer_adapter.validate_json(body_text(body))
    except ValidationError as exc:
        raise malformed(exc) from None
