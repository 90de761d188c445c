"""The archive's request server: NS.archive.requests -> an answer on direct reply-to.

Every request gets exactly one answer, a page, results or a refusal, and nothing a
requester sends can stop the server: a body over the limit is refused `too_large`, one
that breaks the schema `malformed`, and in accounts mode a request whose AMQP `user_id`
(which the broker checks) is not its `requester_id` `forbidden`. Who may read what
follows the directory, as the archive folds it: a group's history and search, its
current members; a DM, its two parties (a request names the requester's own DMs by the
peer, so only a registered requester is checked, and a DM_PEERS_REQUEST asks only for
the requester's own). What to answer an allowed request
with is the face's (`Answer`), given the groups the requester may search. A
request without `reply_to` has nowhere to go: it is acked, dropped and logged. A
request is acked once its answer is confirmed, so a worker that dies first leaves it to
another; requests are answered concurrently, up to the queue's prefetch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chat_tui.core.directory_snapshot import DirectorySnapshot
from chat_tui.protocol.archive import (
    ArchiveAnswer,
    ArchiveRefusal,
    ArchiveRequest,
    DmPeersRequest,
    RefusalReason,
    decode_request,
)
from chat_tui.protocol.models import MAX_BODY_BYTES, MalformedMessageError
from chat_tui.transport.errors import PublishFailed
from chat_tui.transport.work_queues import RequestDelivery

log = logging.getLogger(__name__)

Answer = Callable[[ArchiveRequest, frozenset[str]], Awaitable[ArchiveAnswer]]
"""The answer to an allowed request, given the groups its requester is a member of now;
it must stay under MAX_BODY_BYTES."""
Reply = Callable[[str, str | None, bytes], Awaitable[None]]
"""Publishes (reply_to, correlation_id, body), confirmed; raises PublishFailed."""

MAX_DETAIL_CHARS = 500
CATCH_UP_WAIT = 2.0
"""A requester who just joined a group asks for its history at once; the join may not
be folded yet. Before refusing, the server waits this long for the directory to be
quiet and looks again."""


def access_problem(request: ArchiveRequest, directory: DirectorySnapshot) -> str | None:
    """Why `request.requester_id` may not read what it asks for, or None."""
    requester = request.requester_id
    if requester not in directory.users:
        return f"{requester!r} is not a registered user"
    group = None if isinstance(request, DmPeersRequest) else request.group_id
    if group is not None and requester not in directory.groups.get(group, set()):
        return f"{requester!r} is not a member of {group!r}"
    return None


def refusal(reason: RefusalReason, detail: str) -> ArchiveRefusal:
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 3] + "..."
    return ArchiveRefusal(reason=reason, detail=detail)


@dataclass
class RequestCounters:
    answered: int = 0
    refused: int = 0
    dropped: int = 0
    """Without reply_to: nowhere to answer."""
    unsent: int = 0
    """Answers that did not go out; their requests stay unacked and come back."""


class RequestServer:
    def __init__(
        self,
        answer: Answer,
        reply: Reply,
        directory: DirectorySnapshot,
        caught_up: Callable[[float], Awaitable[bool]],
        *,
        verify_requesters: bool,
    ) -> None:
        self.answer = answer
        self.reply = reply
        self.directory = directory
        self.caught_up = caught_up
        """Waits up to N seconds for the directory follower to be quiet."""
        self.verify_requesters = verify_requesters
        """Accounts mode: the requester is the AMQP user_id, as the broker checked it."""
        self.counters = RequestCounters()
        self._serving: set[asyncio.Task[None]] = set()

    def on_delivery(self, request: RequestDelivery) -> None:
        """The consumer callback: one task per request (the prefetch bounds them)."""
        task = asyncio.get_running_loop().create_task(self.serve(request))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def finish(self, timeout: float) -> None:
        """Let the requests in progress be answered; cancel what is left after `timeout`
        (unacked, they go to another worker)."""
        if not self._serving:
            return
        _, late = await asyncio.wait(set(self._serving), timeout=timeout)
        for task in late:
            task.cancel()

    async def serve(self, request: RequestDelivery) -> None:
        try:
            await self._serve(request)
        except Exception:
            # Nothing a requester sends may stop the server; the request stays unacked.
            log.exception("answering a request failed")

    async def _serve(self, request: RequestDelivery) -> None:
        if not request.reply_to:
            self.counters.dropped += 1
            log.warning("dropping a request without reply_to (from %r)", request.user_id)
            await self._ack(request)
            return
        answer = await self.answer_for(request.body, request.user_id)
        if isinstance(answer, ArchiveRefusal):
            self.counters.refused += 1
            log.info("refusing a request from %r: %s", request.user_id, answer.detail)
        else:
            self.counters.answered += 1
        try:
            await self.reply(request.reply_to, request.correlation_id, answer.to_body())
        except PublishFailed as exc:
            self.counters.unsent += 1
            log.warning("an answer did not go out, the request comes back: %s", exc)
            return
        await self._ack(request)

    async def answer_for(self, body: bytes, user_id: str | None) -> ArchiveAnswer:
        """What to answer `body`, published by `user_id`."""
        if len(body) > MAX_BODY_BYTES:
            return refusal("too_large", f"the request is {len(body)} bytes, over {MAX_BODY_BYTES}")
        try:
            request = decode_request(body)
        except MalformedMessageError as exc:
            return refusal("malformed", f"not an archive request: {exc}")
        if self.verify_requesters and user_id != request.requester_id:
            return refusal(
                "forbidden",
                f"requester_id {request.requester_id!r} is not the account that asked "
                f"({user_id!r})",
            )
        problem = access_problem(request, self.directory)
        if problem is not None:
            await self.caught_up(CATCH_UP_WAIT)
            problem = access_problem(request, self.directory)
        if problem is not None:
            return refusal("forbidden", problem)
        groups = frozenset(self.directory.groups_of(request.requester_id))
        try:
            answer = await self.answer(request, groups)
        except Exception:
            log.exception("the archive could not answer a %s", request.type)
            return refusal("unavailable", "the archive failed to answer; ask again later")
        if len(answer.to_body()) > MAX_BODY_BYTES:
            log.error("an answer came out over %d bytes; refused instead", MAX_BODY_BYTES)
            return refusal("unavailable", "the answer would be over the body limit")
        return answer

    @staticmethod
    async def _ack(request: RequestDelivery) -> None:
        try:
            await request.ack()
        except Exception as exc:  # a link that died: the broker redelivers it
            log.info("ack skipped, the broker will redeliver: %r", exc)
