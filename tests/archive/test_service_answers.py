"""The request server's decisions without a broker, on a real SQLite archive: who may
read what, from the directory as the archive folds it, and pages cut to fit the body
limit. (The same end to end through the broker: test_service_requests.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chat_tui.archive.answers import ArchiveAnswers
from chat_tui.archive.database import ArchiveDatabase, open_archive_database
from chat_tui.core.archive_requests import RequestServer
from chat_tui.core.directory_snapshot import DirectorySnapshot
from chat_tui.protocol.archive import ArchiveRefusal, HistoryPage, HistoryRequest
from chat_tui.protocol.models import MAX_BODY_BYTES, DirectoryEvent
from tests.archive.service_world import spaced


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[ArchiveDatabase]:
    archive = open_archive_database(str(tmp_path / "archive.sqlite3"))
    await archive.open()
    yield archive
    await archive.close()


async def no_reply(reply_to: str, correlation_id: str | None, body: bytes) -> None:
    raise AssertionError("answer_for does not publish")


def server(
    database: ArchiveDatabase, directory: DirectorySnapshot, **options: bool
) -> RequestServer:
    async def caught_up(timeout: float) -> bool:
        return True

    return RequestServer(
        ArchiveAnswers(database).answer,
        no_reply,
        directory,
        caught_up,
        verify_requesters=options.get("accounts", False),
    )


def directory_of(*events: DirectoryEvent) -> DirectorySnapshot:
    snapshot = DirectorySnapshot()
    for event in events:
        snapshot.fold(event)
    return snapshot


async def test_a_join_folded_while_the_request_waits_is_answered(database: ArchiveDatabase) -> None:
    directory = directory_of(DirectoryEvent(event="registered", user_id="carol"))
    await database.store(spaced(3, "alice", "lobby"))

    async def fold_the_join(timeout: float) -> bool:
        # What the follower does meanwhile: her joined event arrives.
        directory.fold(DirectoryEvent(event="joined", user_id="carol", group_id="lobby"))
        return True

    requests = server(database, directory)
    requests.caught_up = fold_the_join
    body = HistoryRequest(requester_id="carol", group_id="lobby").to_body()
    page = await requests.answer_for(body, None)
    assert isinstance(page, HistoryPage) and len(page.messages) == 3


async def test_in_accounts_mode_the_requester_is_the_login(database: ArchiveDatabase) -> None:
    directory = directory_of(
        DirectoryEvent(event="registered", user_id="bob"),
        DirectoryEvent(event="registered", user_id="eve"),
    )
    requests = server(database, directory, accounts=True)
    body = HistoryRequest(requester_id="bob", peer_id="alice").to_body()
    assert isinstance(await requests.answer_for(body, "bob"), HistoryPage)
    for login in ("eve", None):
        refused = await requests.answer_for(body, login)
        assert isinstance(refused, ArchiveRefusal) and refused.reason == "forbidden"


async def test_pages_of_large_messages_fit_and_skip_nothing(database: ArchiveDatabase) -> None:
    directory = directory_of(
        DirectoryEvent(event="registered", user_id="alice"),
        DirectoryEvent(event="joined", user_id="alice", group_id="lobby"),
    )
    messages = spaced(12, "alice", "lobby", text="é" * 8000)  # 16,000 bytes of UTF-8 each
    await database.store(messages)
    requests = server(database, directory)
    for direction in ("older", "newer"):
        seen: list[str] = []
        cursor = None
        while True:
            request = HistoryRequest(
                requester_id="alice", group_id="lobby", direction=direction, cursor=cursor
            )
            page = await requests.answer_for(request.to_body(), None)
            assert isinstance(page, HistoryPage)
            assert len(page.messages) > 0 and len(page.to_body()) <= MAX_BODY_BYTES
            texts = [m.content for m in page.messages]
            seen = texts + seen if direction == "older" else seen + texts
            if (cursor := page.next_cursor) is None:
                break
        assert seen == [m.content for m in messages], direction
