"""Asking the archive for history pages, search results and one's DM peers, as the
client core needs.

Every request is bounded by `archive_timeout`. What comes back is checked: a refusal
becomes an `ArchiveRefusedError` with the archive's reason, a body that is not an
answer of the kind asked for is "unavailable", and messages of another conversation
than the one asked for are dropped. The first time no archive answers (none deployed,
none consuming, or its database down) the client is told once, in a plain sentence;
after that each caller gets the error and decides, and chatting goes on regardless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chat_tui.core.errors import ArchiveRefusedError, ArchiveUnavailableError
from chat_tui.protocol.archive import (
    DM_PEERS_REQUEST,
    HISTORY_REQUEST,
    MAX_HISTORY_LIMIT,
    MAX_SEARCH_LIMIT,
    SEARCH_REQUEST,
    ArchiveRefusal,
    DmPeers,
    DmPeersRequest,
    HistoryDirection,
    HistoryPage,
    HistoryRequest,
    SearchRequest,
    SearchResults,
    decode_answer,
)
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import MalformedMessageError
from chat_tui.transport.archive_requests import (
    ArchiveLinkDown,
    ArchiveNotDeployed,
    ArchiveRequester,
    ArchiveRequestError,
    ArchiveRequestRefused,
    ArchiveTimeout,
)

log = logging.getLogger(__name__)

NOT_AVAILABLE = (
    "History from before this device, or from before you joined a group, is not "
    "available on this deployment: {reason}. Chatting works as usual."
)


class ArchiveClient:
    """History and search requests of user `me`. `requester` None: this client has no
    link an archive could answer on (a stand-in transport in tests)."""

    def __init__(
        self,
        requester: ArchiveRequester | None,
        me: str,
        *,
        timeout: float,
        tell_unavailable: Callable[[str], None],
    ) -> None:
        self._requester = requester
        self.me = me
        self.timeout = timeout
        self._tell_unavailable = tell_unavailable
        self._told = False

    async def history(
        self,
        conversation: Conversation,
        cursor: str | None,
        direction: HistoryDirection = "older",
        limit: int = MAX_HISTORY_LIMIT,
    ) -> HistoryPage:
        """One page of `conversation`, oldest first, only its own messages."""
        request = HistoryRequest(
            requester_id=self.me,
            group_id=conversation.name if conversation.kind == "group" else None,
            peer_id=conversation.name if conversation.kind == "dm" else None,
            cursor=cursor,
            direction=direction,
            limit=max(1, min(limit, MAX_HISTORY_LIMIT)),
        )
        answer = await self._ask(request.model_dump_json().encode(), HISTORY_REQUEST)
        if not isinstance(answer, HistoryPage):
            raise self._unavailable(f"it answered a history request with {answer.type}")
        own = tuple(
            m for m in answer.messages if Conversation.of_message(m, self.me) == conversation
        )
        if len(own) != len(answer.messages):
            log.warning(
                "the archive sent %d messages of other conversations in a page of %s",
                len(answer.messages) - len(own),
                conversation,
            )
            return HistoryPage(messages=own, next_cursor=answer.next_cursor)
        return answer

    async def search(
        self, text: str, conversation: Conversation | None, limit: int
    ) -> SearchResults:
        request = SearchRequest(
            requester_id=self.me,
            group_id=conversation.name if conversation and conversation.kind == "group" else None,
            peer_id=conversation.name if conversation and conversation.kind == "dm" else None,
            query=text,
            limit=max(1, min(limit, MAX_SEARCH_LIMIT)),
        )
        answer = await self._ask(request.model_dump_json().encode(), SEARCH_REQUEST)
        if not isinstance(answer, SearchResults):
            raise self._unavailable(f"it answered a search with {answer.type}")
        return answer

    async def dm_peers(self) -> DmPeers:
        """Whom this user has DMs with in the archive, the most recent first."""
        request = DmPeersRequest(requester_id=self.me)
        answer = await self._ask(request.model_dump_json().encode(), DM_PEERS_REQUEST)
        if not isinstance(answer, DmPeers):
            raise self._unavailable(f"it answered a DM peers request with {answer.type}")
        return answer

    async def _ask(self, body: bytes, message_type: str) -> HistoryPage | SearchResults | DmPeers:
        if self._requester is None:
            raise ArchiveUnavailableError("this client has no link to an archive")
        try:
            raw = await self._requester.ask(body, message_type, self.timeout)
        except (ArchiveNotDeployed, ArchiveTimeout) as exc:
            raise self._unavailable(str(exc)) from None
        except ArchiveRequestRefused as exc:
            raise ArchiveRefusedError(str(exc)) from None
        except ArchiveLinkDown as exc:
            # Offline is said by the header already; it is not news about the archive.
            raise ArchiveUnavailableError(f"cannot ask the archive: {exc}") from None
        except ArchiveRequestError as exc:
            raise ArchiveUnavailableError(str(exc)) from None
        try:
            answer = decode_answer(raw)
        except MalformedMessageError as exc:
            raise self._unavailable(f"its answer could not be read ({exc})") from None
        if isinstance(answer, ArchiveRefusal):
            if answer.reason == "unavailable":
                raise self._unavailable(f"the archive cannot answer now ({answer.detail})")
            raise ArchiveRefusedError(f"the archive refused: {answer.detail} ({answer.reason})")
        return answer

    def _unavailable(self, reason: str) -> ArchiveUnavailableError:
        text = NOT_AVAILABLE.format(reason=reason)
        if not self._told:
            self._told = True
            self._tell_unavailable(text)
        return ArchiveUnavailableError(text)
