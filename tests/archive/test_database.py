"""The archive's database, every behaviour on both backends: a SQLite file and a fresh
PostgreSQL database on the shared server (and a private server for the restart)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sqlite3
import struct
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from chat_tui.archive.database import (
    ArchiveDatabase,
    ArchiveDatabaseUnavailable,
    ConversationRef,
    PostgresArchive,
    Readable,
    SqliteArchive,
    history_cursor,
    open_archive_database,
)
from chat_tui.archive.database import postgres as postgres_archive
from chat_tui.archive.database import sqlite as sqlite_archive
from chat_tui.protocol.archive import MAX_SNIPPET_CHARS, HistoryDirection
from chat_tui.protocol.models import SendMessage
from tests.archive.pg_server import PrivateServer, create_database, drop_database, fresh_database

T = TypeVar("T")
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TEAM = ConversationRef.group("team")
ALICE_BOB = ConversationRef.dm("bob", "alice")
ALICE = Readable("alice", frozenset({"team"}))


def message(
    content: str,
    *,
    sender: str = "bob",
    group: str | None = "team",
    to: str | None = None,
    at: datetime = START,
) -> SendMessage:
    return SendMessage(
        message_id=uuid.uuid4(),
        sender_id=sender,
        group_id=None if to is not None else group,
        recipient_id=to,
        content=content,
        timestamp=at,
    )


def in_order(messages: list[SendMessage]) -> list[SendMessage]:
    """The archive's order within a conversation: by time, then message_id."""
    return sorted(messages, key=lambda m: (m.timestamp, m.message_id))


def _in_a_loop_of_its_own(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to the end from a synchronous fixture, which pytest-asyncio may set up
    while a test's event loop is running."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, work).result()


@pytest.fixture(scope="module")
def module_database() -> Iterator[str]:
    """One fresh database on the shared server for this module's tests: each test gets a
    schema of its own in it, which is made in milliseconds, where a database takes a
    second."""
    url = _in_a_loop_of_its_own(create_database())
    try:
        yield url
    finally:
        _in_a_loop_of_its_own(drop_database(url))


@pytest.fixture(params=["sqlite", "postgres"])
async def location(
    request: pytest.FixtureRequest, tmp_path: Path, module_database: str
) -> AsyncIterator[str]:
    """Where an archive lives: a SQLite file, or an empty schema of a PostgreSQL
    database (asyncpg passes `search_path` in the URL on as a server setting)."""
    if request.param == "sqlite":
        yield str(tmp_path / "archive" / "archive.sqlite3")
        return
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(module_database)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield f"{module_database}?search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture
async def archive(location: str) -> AsyncIterator[ArchiveDatabase]:
    opened = open_archive_database(location)
    await opened.open()
    yield opened
    await opened.close()


async def page_through(
    archive: ArchiveDatabase,
    conversation: ConversationRef,
    direction: HistoryDirection,
    limit: int,
) -> list[list[SendMessage]]:
    pages: list[list[SendMessage]] = []
    cursor: str | None = None
    while True:
        page, cursor = await archive.history(conversation, cursor, direction, limit)
        pages.append(page)
        if cursor is None:
            return pages


def test_the_location_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_archive_database("postgresql://u@db/archive"), PostgresArchive)
    assert isinstance(open_archive_database("postgres://u@db/archive"), PostgresArchive)
    assert isinstance(open_archive_database(str(tmp_path / "a.sqlite3")), SqliteArchive)


def test_a_dm_is_named_by_its_two_parties_either_way_round() -> None:
    assert ConversationRef.dm("bob", "alice") == ConversationRef.dm("alice", "bob")
    to_alice = message("hi", sender="bob", to="alice")
    to_bob = message("hi", sender="alice", to="bob")
    assert ConversationRef.of_message(to_alice) == ConversationRef.of_message(to_bob) == ALICE_BOB
    assert ConversationRef.of_message(message("hi")) == TEAM
    with pytest.raises(ValueError):
        ConversationRef(group_id="team", parties=("alice", "bob"))


async def test_each_message_is_stored_once_and_counted(archive: ArchiveDatabase) -> None:
    first = [message(f"m{i}") for i in range(3)]
    assert await archive.store(first) == 3
    again = [*first, message("new")]
    assert await archive.store(again) == 1
    twice_in_one_batch = message("twice")
    assert await archive.store([twice_in_one_batch, twice_in_one_batch]) == 1
    assert await archive.store([]) == 0
    assert await archive.count() == 5


async def test_an_archive_opened_again_keeps_everything(location: str) -> None:
    first = open_archive_database(location)
    await first.open()
    stored = [message(f"m{i}", at=START + timedelta(seconds=i)) for i in range(4)]
    await first.store(stored)
    await first.close()
    again = open_archive_database(location)
    await again.open()
    try:
        assert await again.count() == 4
        page, _ = await again.history(TEAM, None, "newer", 10)
        assert page == stored
    finally:
        await again.close()


async def test_closing_twice_is_harmless(location: str) -> None:
    archive = open_archive_database(location)
    await archive.open()
    await archive.close()
    await archive.close()


async def test_workers_opening_one_archive_at_once_create_it_once(location: str) -> None:
    workers = [open_archive_database(location) for _ in range(3)]
    await asyncio.gather(*(w.open() for w in workers))
    try:
        assert await workers[0].store([message("hello")]) == 1
        assert [await w.count() for w in workers] == [1, 1, 1]
    finally:
        for w in workers:
            await w.close()


async def test_racing_workers_store_each_message_once(location: str) -> None:
    one, two = open_archive_database(location), open_archive_database(location)
    await one.open()
    await two.open()
    try:
        batches = [[message(f"r{round_}-{i}") for i in range(50)] for round_ in range(10)]
        new = 0
        for batch in batches:
            # The same copies, in opposite orders, at the same time.
            counts = await asyncio.gather(one.store(batch), two.store(batch[::-1]))
            new += sum(counts)
        assert new == 500
        assert await one.count() == 500
    finally:
        await one.close()
        await two.close()


async def test_history_pages_older_from_the_newest_across_equal_times(
    archive: ArchiveDatabase,
) -> None:
    # Three messages per second: a page boundary falls between equal timestamps.
    stored = [message(f"m{i}", at=START + timedelta(seconds=i // 3)) for i in range(25)]
    await archive.store(stored[::-1])
    await archive.store([message("elsewhere", group="other")])
    pages = await page_through(archive, TEAM, "older", 7)
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    expected = in_order(stored)
    assert pages[0] == expected[-7:]  # the newest page, oldest first
    assert [m for page in reversed(pages) for m in page] == expected


async def test_history_pages_newer_from_the_oldest(archive: ArchiveDatabase) -> None:
    stored = [message(f"m{i}", at=START + timedelta(seconds=i // 4)) for i in range(20)]
    await archive.store(stored)
    pages = await page_through(archive, TEAM, "newer", 8)
    assert [len(p) for p in pages] == [8, 8, 4]
    assert [m for page in pages for m in page] == in_order(stored)


async def test_a_full_last_page_says_nothing_is_further(archive: ArchiveDatabase) -> None:
    stored = [message(f"m{i}", at=START + timedelta(seconds=i)) for i in range(6)]
    await archive.store(stored)
    page, cursor = await archive.history(TEAM, None, "older", 6)
    assert page == stored
    assert cursor is None
    assert await archive.history(ConversationRef.group("empty"), None, "older", 5) == ([], None)


async def test_a_cursor_is_a_position_either_direction_continues_from(
    archive: ArchiveDatabase,
) -> None:
    stored = in_order([message(f"m{i}", at=START + timedelta(seconds=i // 2)) for i in range(10)])
    await archive.store(stored)
    middle = history_cursor(stored[4])
    older, _ = await archive.history(TEAM, middle, "older", 10)
    newer, _ = await archive.history(TEAM, middle, "newer", 10)
    assert older == stored[:4]
    assert newer == stored[5:]
    _, cursor = await archive.history(TEAM, None, "older", 3)
    assert cursor == history_cursor(stored[7])


async def test_a_dm_is_one_conversation_whoever_sent(archive: ArchiveDatabase) -> None:
    dm = [
        message("hi alice", sender="bob", to="alice", at=START),
        message("hi bob", sender="alice", to="bob", at=START + timedelta(seconds=1)),
    ]
    await archive.store([*dm, message("to carol", sender="bob", to="carol"), message("team")])
    assert await archive.history(ALICE_BOB, None, "older", 10) == (dm, None)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "nonsense",
        "a1.",
        "a1.!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        "a1." + "A" * 33,
        "b1." + "A" * 32,
    ],
)
async def test_a_malformed_cursor_is_a_value_error(archive: ArchiveDatabase, cursor: str) -> None:
    with pytest.raises(ValueError, match="malformed cursor"):
        await archive.history(TEAM, cursor, "older", 10)


async def test_a_cursor_out_of_time_range_is_a_value_error(archive: ArchiveDatabase) -> None:
    # Well formed, but the largest 64-bit count of microseconds: past the year 9999.
    far = base64.urlsafe_b64encode(struct.pack(">q16s", 2**63 - 1, bytes(16)))
    with pytest.raises(ValueError, match="malformed cursor"):
        await archive.history(TEAM, "a1." + far.decode().rstrip("="), "newer", 5)


async def test_search_answers_only_what_the_requester_may_read(archive: ArchiveDatabase) -> None:
    in_team = message("the release is friday", group="team")
    in_ops = message("the release is delayed", group="ops")
    bob_to_alice = message("release notes for you", sender="bob", to="alice")
    carol_to_bob = message("release party?", sender="carol", to="bob")
    await archive.store([in_team, in_ops, bob_to_alice, carol_to_bob])

    found = await archive.search("release", ALICE, None, 10)
    assert {h.message for h in found} == {in_team, bob_to_alice}
    as_bob = await archive.search("release", Readable("bob", frozenset({"ops"})), None, 10)
    assert {h.message for h in as_bob} == {in_ops, bob_to_alice, carol_to_bob}
    stranger = Readable("mallory", frozenset())
    assert await archive.search("release", stranger, None, 10) == []
    # A conversation named in the request narrows; it never widens what may be read.
    within_dm = await archive.search("release", ALICE, ALICE_BOB, 10)
    assert [h.message for h in within_dm] == [bob_to_alice]
    not_hers = await archive.search("release", ALICE, ConversationRef.dm("bob", "carol"), 10)
    assert not_hers == []


async def test_search_ranks_the_message_about_the_words_first(archive: ArchiveDatabase) -> None:
    about = message("deploy deploy: the deploy failed", at=START)
    mentions = message(
        "long notes from the meeting about lunch, the office move, holidays and a deploy "
        "that someone mentioned in passing, then more about lunch and the weather",
        at=START + timedelta(seconds=1),
    )
    unrelated = message("lunch at noon", at=START + timedelta(seconds=2))
    await archive.store([mentions, about, unrelated])
    hits = await archive.search("deploy", ALICE, None, 10)
    assert [h.message for h in hits] == [about, mentions]
    assert hits[0].rank > hits[1].rank
    assert len(await archive.search("deploy", ALICE, None, 1)) == 1


async def test_search_ranks_the_newest_matches_the_requester_may_read(
    archive: ArchiveDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    for backend in (sqlite_archive, postgres_archive):
        monkeypatch.setattr(backend, "RANKED_MATCHES", 5)
    about = message("deploy deploy: the deploy failed", at=START)
    mentions = [
        message(f"notes {n} that mention a deploy in passing", at=START + timedelta(minutes=n))
        for n in range(1, 9)
    ]
    # Newer still, better matches, but not Alice's: they take nothing of her window.
    elsewhere = [
        message("deploy deploy deploy", group="ops", at=START + timedelta(hours=1, minutes=n))
        for n in range(10)
    ]
    for batch in ([about], mentions[:4], mentions[4:], elsewhere):
        await archive.store(batch)

    hits = await archive.search("deploy", ALICE, None, 20)
    assert {h.message for h in hits} == set(mentions[-5:])
    assert len(await archive.search("deploy", ALICE, None, 2)) == 2
    for backend in (sqlite_archive, postgres_archive):
        monkeypatch.setattr(backend, "RANKED_MATCHES", 100)
    everything = await archive.search("deploy", ALICE, None, 20)
    assert [h.message for h in everything][:1] == [about]
    assert len(everything) == 9


FTS_TEXTS = {
    "near": "please deploy the fix near the gate",
    "operators": "deploy and or not",
    "deployed": "the fix is not deployed",
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"deploy', {"near", "operators"}),
        ('deploy"', {"near", "operators"}),
        ('"deploy the fix"', {"near"}),
        ("NEAR(deploy fix)", {"near"}),
        ("deploy*", {"near", "operators"}),
        ("-deploy", {"near", "operators"}),
        ("deploy -fix", {"near"}),
        ("deploy (fix", {"near"}),
        ("fix)", {"near", "deployed"}),
        ("deploy AND OR NOT", {"operators"}),
        ("NOT deploy", {"operators"}),
        ("^deploy", {"near", "operators"}),
        ("fix:deploy", {"near"}),
        ("content:fix", set()),
        ("deploy + fix", {"near"}),
        ("DEPLOY", {"near", "operators"}),
        ("*", set()),
        ("()", set()),
        ('""', set()),
        ("- - -", set()),
        ("a\x00b", set()),
    ],
)
async def test_search_syntax_in_a_query_is_searched_as_plain_words(
    archive: ArchiveDatabase, query: str, expected: set[str]
) -> None:
    stored = {name: message(text) for name, text in FTS_TEXTS.items()}
    await archive.store(list(stored.values()))
    hits = await archive.search(query, ALICE, None, 10)
    assert {h.message.content for h in hits} == {FTS_TEXTS[name] for name in expected}


async def test_a_snippet_is_short_plain_text_around_the_match(archive: ArchiveDatabase) -> None:
    filler = " ".join(f"word{i}" for i in range(700))
    long = message(f"{filler}\n\nthe  needle\tis here {filler}")
    short = message("a short needle")
    await archive.store([long, short])
    hits = {h.message: h.snippet for h in await archive.search("needle", ALICE, None, 10)}
    assert hits[short] == "a short needle"
    assert "the needle is here" in hits[long]
    assert len(hits[long]) <= MAX_SNIPPET_CHARS
    assert hits[long].startswith("…") and hits[long].endswith("…")


async def test_purge_removes_old_messages_and_their_search_entries(
    archive: ArchiveDatabase,
) -> None:
    old = [message(f"ancient relic {i}", at=START - timedelta(days=40 + i)) for i in range(3)]
    recent = message("recent relic", at=START)
    await archive.store([*old, recent])
    assert await archive.purge_before(START - timedelta(days=30)) == 3
    assert await archive.count() == 1
    assert [h.message for h in await archive.search("relic", ALICE, None, 10)] == [recent]
    assert await archive.search("ancient", ALICE, None, 10) == []
    assert await archive.history(TEAM, None, "older", 10) == ([recent], None)
    assert await archive.purge_before(START - timedelta(days=30)) == 0


async def test_a_nul_character_is_kept_as_a_replacement_character(
    archive: ArchiveDatabase,
) -> None:
    """PostgreSQL's text cannot hold U+0000; both backends answer alike."""
    await archive.store([message("before\x00after")])
    (stored,), _ = await archive.history(TEAM, None, "older", 1)
    assert stored.content == "before\ufffdafter"
    assert [h.message for h in await archive.search("after", ALICE, None, 5)] == [stored]


async def test_sqlite_purge_leaves_the_search_index_in_step(tmp_path: Path) -> None:
    """The search rows of purged messages go in the same transaction. Search itself
    cannot tell (it joins the index to the table); counting the index's own matches
    can: a stale entry would still be counted."""
    path = tmp_path / "archive.sqlite3"
    archive = open_archive_database(str(path))
    await archive.open()
    try:
        await archive.store([message(f"old {i}", at=START - timedelta(days=i)) for i in range(50)])
        assert await archive.purge_before(START - timedelta(days=25)) == 24
    finally:
        await archive.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM messages_fts('old')").fetchone() == (26,)


@pytest.mark.parametrize("how", ["crash", "stop"])
async def test_postgres_down_is_unavailable_and_back_without_reopening(
    private_postgres: PrivateServer, how: str
) -> None:
    async with fresh_database(private_postgres.url) as url:
        archive = open_archive_database(url)
        await archive.open()
        try:
            assert await archive.store([message("before")]) == 1
            # An immediate shutdown (like a kill) or a fast one (clients told to go).
            getattr(private_postgres, how)()
            with pytest.raises(ArchiveDatabaseUnavailable):
                await archive.store([message("while down")])
            with pytest.raises(ArchiveDatabaseUnavailable):
                await archive.search("before", ALICE, None, 5)
            private_postgres.start()
            assert await archive.store([message("after")]) == 1
            assert await archive.count() == 2
        finally:
            await archive.close()


async def test_postgres_that_is_not_there_at_open_is_unavailable() -> None:
    server = PrivateServer()  # initialised, never started: nothing listens on its port
    try:
        archive = open_archive_database(f"{server.url}/archive")
        with pytest.raises(ArchiveDatabaseUnavailable):
            await archive.open()
    finally:
        with contextlib.suppress(Exception):
            server.destroy()


async def test_sqlite_archive_file_is_the_services_alone(tmp_path: Path) -> None:
    path = tmp_path / "data" / "archive.sqlite3"
    archive = open_archive_database(str(path))
    await archive.open()
    try:
        await archive.store([message("a dm", to="alice")])
    finally:
        await archive.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


BEFORE_ACCESS = """
CREATE TABLE archive_messages (
    message_id uuid PRIMARY KEY,
    conversation text NOT NULL,
    group_id text,
    sender_id text NOT NULL,
    recipient_id text,
    content text NOT NULL,
    sent_at timestamptz NOT NULL,
    search tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED
);
CREATE INDEX archive_messages_search ON archive_messages USING gin (search);
INSERT INTO archive_messages VALUES
    ('00000000-0000-4000-8000-000000000001', 'g:team', 'team', 'bob', NULL,
     'the release is friday', '2026-11-02 09:00+00'),
    ('00000000-0000-4000-8000-000000000002', 'g:ops', 'ops', 'bob', NULL,
     'the release is late', '2026-11-02 09:01+00'),
    ('00000000-0000-4000-8000-000000000003', 'dm:alice:bob', NULL, 'bob', 'alice',
     'release notes for you', '2026-11-02 09:02+00');
"""


async def test_a_postgres_archive_made_before_access_gains_it_when_opened(
    module_database: str,
) -> None:
    """Search reads who may read a row from `access`: an archive from before it gets the
    column (filled for every row already there) and its index when a worker opens it."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(module_database)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        await admin.execute(f"SET search_path = {schema}; {BEFORE_ACCESS}")
        archive = open_archive_database(f"{module_database}?search_path={schema}")
        await archive.open()
        try:
            found = await archive.search("release", ALICE, None, 10)
            assert sorted(h.message.content for h in found) == [
                "release notes for you",
                "the release is friday",
            ]
        finally:
            await archive.close()
        indexes = await admin.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema
        )
        assert "archive_messages_access" in {row["indexname"] for row in indexes}
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def test_a_worker_opening_a_current_postgres_archive_takes_no_lock_on_its_table(
    module_database: str,
) -> None:
    """DDL would queue behind whatever holds the table (a dump, a long purge) and every
    other worker's inserts behind it: a worker that finds the schema current runs none."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    url = f"{module_database}?search_path={schema}"
    admin = await asyncpg.connect(module_database)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        first = open_archive_database(url)
        await first.open()
        await first.close()
        holder = await asyncpg.connect(url)
        try:
            async with holder.transaction():
                # What a pg_dump holds; it conflicts with ALTER TABLE and CREATE INDEX.
                await holder.execute("LOCK TABLE archive_messages IN SHARE UPDATE EXCLUSIVE MODE")
                second = open_archive_database(url)
                async with asyncio.timeout(5):
                    await second.open()
                await second.close()
        finally:
            await holder.close()
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
