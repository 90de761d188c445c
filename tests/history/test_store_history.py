"""The cache's side of history and search: backfilled messages keep their place, are
not unread, send no receipts and are stored once; FTS5 finds cached text, and FTS
syntax in a query is text; a version 2 cache is migrated to 3 with its messages indexed."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chat_tui.core.cache_policy import open_cache
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import DirectoryEvent, ReceiveMessage, SendMessage
from chat_tui.store import Store, schema
from chat_tui.store.backfill import ArchivePosition
from chat_tui.store.records import StoredMessage
from chat_tui.store.schema import SCHEMA_VERSION

TEAM = Conversation.group("team")
START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def message(
    content: str, minute: int, sender: str = "bob", group: str | None = "team"
) -> SendMessage:
    return SendMessage(
        message_id=uuid.uuid4(),
        sender_id=sender,
        group_id=group,
        recipient_id=None if group else ("bob" if sender == "alice" else "alice"),
        content=content,
        timestamp=START + timedelta(minutes=minute),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_cache(tmp_path / "alice.sqlite3", "alice")
    await opened.apply_directory(
        [
            DirectoryEvent(event="registered", user_id="alice"),
            DirectoryEvent(event="registered", user_id="bob"),
            DirectoryEvent(event="created", user_id="bob", group_id="team"),
            DirectoryEvent(event="joined", user_id="bob", group_id="team"),
            DirectoryEvent(event="joined", user_id="alice", group_id="team"),
        ]
    )
    yield opened
    await opened.close()


def texts(page: list[StoredMessage]) -> list[str]:
    return [m.content for m in page]


async def test_older_history_sorts_before_what_the_inbox_delivered(store: Store) -> None:
    await store.store_incoming([message("live 1", 50), message("live 2", 51)])
    counts = await store.store_archived([message("old 1", 1), message("old 2", 2)])
    assert counts == {TEAM: 2}
    assert texts(await store.history(TEAM)) == ["old 1", "old 2", "live 1", "live 2"]
    # A page further back goes before the first one, whatever order it came in.
    await store.store_archived([message("older 2", -1), message("older 1", -2)])
    assert texts(await store.history(TEAM)) == [
        "older 1",
        "older 2",
        "old 1",
        "old 2",
        "live 1",
        "live 2",
    ]
    # Paging back from the live messages reaches them.
    live = await store.history(TEAM, limit=2)
    assert texts(await store.history(TEAM, before_seq=live[0].seq, limit=10)) == [
        "older 1",
        "older 2",
        "old 1",
        "old 2",
    ]


async def test_backfilled_messages_are_not_unread_and_queue_no_receipts(store: Store) -> None:
    await store.store_archived([message(f"old {i}", i) for i in range(5)])
    summary = {s.conversation: s for s in await store.conversations()}[TEAM]
    assert summary.unread_count == 0 and not summary.mentioned
    assert all(m.seq <= summary.last_read_seq for m in await store.history(TEAM))
    assert await store.outbox_size() == 0
    # Reading up to the newest message sends receipts only for what the inbox brought.
    await store.store_incoming([message("live", 60)], send_delivered=False)
    newest = (await store.history(TEAM))[-1]
    assert await store.mark_read(TEAM, newest.seq) == 1
    summary = {s.conversation: s for s in await store.conversations()}[TEAM]
    assert summary.unread_count == 0


async def test_missed_messages_after_the_cached_ones_are_appended_read(store: Store) -> None:
    await store.store_incoming([message("before leaving", 1)], send_delivered=False)
    first = (await store.history(TEAM))[0]
    await store.mark_read(TEAM, first.seq)
    await store.store_archived([message("missed 1", 10), message("missed 2", 11)])
    assert texts(await store.history(TEAM)) == ["before leaving", "missed 1", "missed 2"]
    summary = {s.conversation: s for s in await store.conversations()}[TEAM]
    assert summary.unread_count == 0
    assert summary.last_read_seq == (await store.history(TEAM))[-1].seq


async def test_a_message_from_both_the_archive_and_the_inbox_is_stored_once(store: Store) -> None:
    both = message("both ways", 5)
    await store.store_archived([both])
    again = await store.store_incoming([both])
    assert again.new_messages == [] and again.to_show == []
    later = message("inbox first", 6)
    await store.store_incoming([later], send_delivered=False)
    assert await store.store_archived([later, message("only archived", 4)]) == {TEAM: 1}
    assert texts(await store.history(TEAM)) == ["only archived", "both ways", "inbox first"]


async def test_own_backfilled_messages_are_sent_with_no_receipt_counts(store: Store) -> None:
    mine = message("mine, from another device", 3, sender="alice")
    await store.store_archived([mine, message("to me", 4, sender="bob", group=None)])
    stored = await store.get_message(str(mine.message_id))
    assert stored is not None and stored.outgoing and stored.status == "sent"
    assert (stored.recipient_count, stored.delivered_count, stored.read_count) == (0, 0, 0)
    conversations = {s.conversation for s in await store.conversations()}
    assert Conversation.dm("bob") in conversations


async def test_the_archive_position_is_kept_with_the_page(store: Store) -> None:
    assert await store.archive_position(TEAM) == ArchivePosition(None, False)
    await store.store_archived(
        [message("a", 1)], position=(TEAM, ArchivePosition("cursor-1", False))
    )
    assert await store.archive_position(TEAM) == ArchivePosition("cursor-1", False)
    await store.store_archived([], position=(TEAM, ArchivePosition(None, True)))
    assert await store.archive_position(TEAM) == ArchivePosition(None, True)


async def test_local_search_finds_cached_text_best_first(store: Store) -> None:
    await store.store_incoming(
        [
            message("the deploy is at noon", 1),
            message("deploy deploy deploy, said everyone", 2),
            message("lunch?", 3),
            message("a deploy in a DM", 4, group=None),
        ]
    )
    await store.store_archived([message("Déploiement: the old deploy notes", 0)])
    hits = await store.search("deploy", None, 10)
    assert len(hits) == 4
    assert hits[0].message.content == "deploy deploy deploy, said everyone"
    assert [h.rank for h in hits] == sorted((h.rank for h in hits), reverse=True)
    assert "deploy" in hits[0].snippet
    within = await store.search("deploy", TEAM, 10)
    assert {h.message.conversation for h in within} == {TEAM}
    assert texts([h.message for h in await store.search("NOON deploy", None, 10)]) == [
        "the deploy is at noon"
    ]
    # Diacritics fold: "deploiement" finds "Déploiement".
    assert len(await store.search("deploiement", None, 10)) == 1


@pytest.mark.parametrize(
    "query",
    [
        '"deploy',
        "deploy NEAR(noon",
        "dep*",
        "-deploy",
        "(deploy",
        "deploy)",
        "AND",
        "OR noon",
        '* - ( ) "',
        "col:deploy",
        "^deploy",
        "NOT",
    ],
)
async def test_fts_syntax_in_a_query_is_searched_as_text(store: Store, query: str) -> None:
    await store.store_incoming([message("the deploy is at noon", 1), message("AND NOT", 2)])
    hits = await store.search(query, None, 10)  # never an error
    words = [w.strip('"*-()^').lower() for w in query.split()]
    for hit in hits:
        assert any(w and w.split(":")[-1] in hit.message.content.lower() for w in words)


async def test_a_version_2_cache_is_migrated_to_3_and_its_messages_are_searchable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "alice.sqlite3"
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    old = await open_cache(path, "alice")
    await old.store_incoming([message("written by version two", 1)])
    await old.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    monkeypatch.undo()

    upgraded = await open_cache(path, "alice")
    try:
        assert texts(await upgraded.history(TEAM)) == ["written by version two"]
        hits = await upgraded.search("version", None, 10)
        assert texts([h.message for h in hits]) == ["written by version two"]
        await upgraded.store_incoming([message("written by version three", 2)])
        assert len(await upgraded.search("written", None, 10)) == 2
    finally:
        await upgraded.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
        assert "from_archive" in columns


async def test_a_receipt_for_an_own_message_from_the_archive_counts_nothing(store: Store) -> None:
    mine = message("sent from my other device", 3, sender="alice")
    await store.store_archived([mine])
    receipt = ReceiveMessage(message_id=mine.message_id, recipient_id="bob", status="read")
    applied = await store.apply_receipts([receipt])
    assert applied.changes == [] and applied.not_recipients == []
    stored = await store.get_message(str(mine.message_id))
    assert stored is not None and (stored.delivered_count, stored.read_count) == (0, 0)
