"""The local SQLite cache: unread counts, mentions, paging, deduplication, durability."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chat_tui.core.cache_policy import open_cache
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import DirectoryEvent, ReceiveMessage, SendMessage, utc_now
from chat_tui.store import SendRefused, Store, schema
from chat_tui.store.database import StoreError
from chat_tui.store.records import SendRefusal, StoredMessage
from chat_tui.store.schema import SCHEMA_VERSION
from chat_tui.store.timestamps import iso

TEAM = Conversation.group("team")
FROM_BOB = Conversation.dm("bob")


def from_bob(content: str, group: str | None = "team") -> SendMessage:
    if group is None:
        return SendMessage(
            message_id=uuid.uuid4(), sender_id="bob", recipient_id="alice", content=content
        )
    return SendMessage(message_id=uuid.uuid4(), sender_id="bob", group_id=group, content=content)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_cache(tmp_path / "alice.sqlite3", "alice")
    yield opened
    await opened.close()


async def team_of(store: Store, *members: str) -> None:
    """The directory knows alice, bob and carol, and #team with `members` in it."""
    events = [DirectoryEvent(event="registered", user_id=u) for u in ("alice", "bob", "carol")]
    events.append(DirectoryEvent(event="created", user_id=members[0], group_id="team"))
    events += [DirectoryEvent(event="joined", user_id=m, group_id="team") for m in members]
    await store.apply_directory(events)


async def summaries(store: Store) -> dict[Conversation, tuple[int, bool]]:
    return {s.conversation: (s.unread_count, s.mentioned) for s in await store.conversations()}


async def test_unread_counts_and_mentions_per_conversation(store: Store) -> None:
    await store.store_incoming(
        [
            from_bob("morning"),
            from_bob("@alice have a look"),
            from_bob("alicex is not alice's name... but alice is", group=None),
            from_bob("lunch?", group=None),
        ]
    )
    assert await summaries(store) == {TEAM: (2, True), FROM_BOB: (2, True)}
    await store.store_incoming([from_bob("no mention here", group="ops")])
    assert (await summaries(store))[Conversation.group("ops")] == (1, False)


async def test_a_word_containing_the_name_is_not_a_mention(store: Store) -> None:
    await store.store_incoming([from_bob("malice and alicex and alice-2"), from_bob("ALICEs")])
    assert (await summaries(store))[TEAM] == (2, False)
    await store.store_incoming([from_bob("thanks ALICE!")])
    assert (await summaries(store))[TEAM] == (3, True)


async def test_mark_read_resets_unread_up_to_what_was_shown(store: Store) -> None:
    result = await store.store_incoming([from_bob(f"m{i}") for i in range(5)])
    seqs = [m.seq for m in result.new_messages]
    queued = await store.mark_read(TEAM, seqs[2])
    assert queued == 1  # one cumulative read receipt for bob
    assert (await summaries(store))[TEAM] == (2, False)
    await store.mark_read(TEAM, seqs[-1])
    assert (await summaries(store))[TEAM] == (0, False)
    # Going back does nothing.
    assert await store.mark_read(TEAM, seqs[0]) == 0
    assert (await summaries(store))[TEAM] == (0, False)


async def test_sending_counts_as_reading(store: Store) -> None:
    await store.store_incoming([from_bob("@alice ping"), from_bob("ping again")])
    await team_of(store, "alice", "bob")
    mine = SendMessage(message_id=uuid.uuid4(), sender_id="alice", group_id="team", content="hi")
    stored, item = await store.enqueue_message(mine)
    assert (await summaries(store))[TEAM] == (0, False)
    assert stored.recipient_count == 1 and stored.status == "queued"
    assert (await store.outbox())[-1] == item


async def test_a_message_that_cannot_be_delivered_is_refused_and_not_written(
    store: Store,
) -> None:
    await team_of(store, "bob", "carol")

    async def refusal(group_id: str | None = None, recipient_id: str | None = None) -> SendRefusal:
        message = SendMessage(
            message_id=uuid.uuid4(),
            sender_id="alice",
            group_id=group_id,
            recipient_id=recipient_id,
            content="?",
        )
        with pytest.raises(SendRefused) as refused:
            await store.enqueue_message(message)
        return refused.value.reason

    assert await refusal(group_id="team") is SendRefusal.NOT_A_MEMBER
    assert await refusal(group_id="nope") is SendRefusal.UNKNOWN_GROUP
    assert await refusal(recipient_id="zed") is SendRefusal.UNKNOWN_USER
    # Offline the directory may be behind: a DM to someone it does not know yet is queued.
    unknown = SendMessage(
        message_id=uuid.uuid4(), sender_id="alice", recipient_id="zed", content="!"
    )
    await store.enqueue_message(unknown, refuse_unknown_user=False)
    assert [item.amqp_message_id for item in await store.outbox()] == [str(unknown.message_id)]
    assert await store.message_count(TEAM) == 0


def read_by(member: str, message_id: str) -> ReceiveMessage:
    return ReceiveMessage(recipient_id=member, message_id=uuid.UUID(message_id), status="read")


async def receipt_counts(store: Store, message_id: str) -> tuple[str, int, int, int]:
    message = await store.get_message(message_id)
    assert message is not None
    return (
        message.status,
        message.recipient_count,
        message.delivered_count,
        message.read_count,
    )


async def test_a_group_message_counts_receipts_only_from_the_people_it_was_sent_to(
    store: Store,
) -> None:
    await team_of(store, "alice", "bob", "carol")

    async def sent(content: str) -> str:
        mine = SendMessage(
            message_id=uuid.uuid4(), sender_id="alice", group_id="team", content=content
        )
        stored, _ = await store.enqueue_message(mine)
        await store.confirm_published(await store.outbox())
        return stored.message_id

    before_eve = await sent("to bob and carol")
    await store.apply_directory(
        [
            DirectoryEvent(event="registered", user_id="eve"),
            DirectoryEvent(event="joined", user_id="eve", group_id="team"),
        ]
    )
    after_eve = await sent("to bob, carol and eve")

    # eve's read of the newer message is cumulative over the conversation, and would
    # cover the older one too; her read of the older one, and a stranger's, name a
    # message they were never sent.
    applied = await store.apply_receipts(
        [
            read_by("eve", after_eve),
            read_by("eve", before_eve),
            read_by("zed", before_eve),
            read_by("bob", before_eve),
        ]
    )
    assert await receipt_counts(store, before_eve) == ("sent", 2, 1, 1)
    assert await receipt_counts(store, after_eve) == ("sent", 3, 1, 1)
    assert [(r.recipient_id, str(r.message_id)) for r in applied.not_recipients] == [
        ("eve", before_eve),
        ("zed", before_eve),
    ]
    assert [r.member_id for r in await store.receipt_details(before_eve)] == ["bob"]
    assert [r.member_id for r in await store.receipt_details(after_eve)] == ["eve"]

    await store.apply_receipts([read_by("carol", after_eve)])
    assert await receipt_counts(store, before_eve) == ("read", 2, 2, 2)
    assert await receipt_counts(store, after_eve) == ("sent", 3, 2, 2)
    applied = await store.apply_receipts([read_by("bob", after_eve)])
    assert applied.not_recipients == []
    assert await receipt_counts(store, after_eve) == ("read", 3, 3, 3)


async def test_own_messages_from_before_recipients_were_kept_count_a_members_receipts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "alice.sqlite3"
    message_id = str(uuid.uuid4())
    conn = sqlite3.connect(path)
    try:
        conn.executescript(schema.MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.executemany(
            "INSERT INTO directory_members (group_id, user_id, joined_at) VALUES (?, ?, ?)",
            [("team", member, iso(utc_now())) for member in ("alice", "bob", "carol")],
        )
        conn.execute("INSERT INTO conversations (conversation_key) VALUES ('group:team')")
        conn.execute(
            """INSERT INTO messages (message_id, conversation_key, sender_id, content,
                   sent_at, stored_at, outgoing, status, recipient_count, shown)
               VALUES (?, 'group:team', 'alice', 'from version 1', ?, ?, 1, 'sent', 2, 1)""",
            (message_id, iso(utc_now()), iso(utc_now())),
        )
        conn.commit()
    finally:
        conn.close()

    store = await open_cache(path, "alice")
    try:
        # Who it went to was not kept then: a current member's receipt counts.
        applied = await store.apply_receipts(
            [read_by("bob", message_id), read_by("zed", message_id)]
        )
        assert [r.recipient_id for r in applied.not_recipients] == ["zed"]
        assert await receipt_counts(store, message_id) == ("sent", 2, 1, 1)
        await store.apply_receipts([read_by("carol", message_id)])
        assert await receipt_counts(store, message_id) == ("read", 2, 2, 2)
        assert [r.member_id for r in await store.receipt_details(message_id)] == ["bob", "carol"]
    finally:
        await store.close()


async def test_history_pages_back_and_forward(store: Store) -> None:
    result = await store.store_incoming([from_bob(f"m{i:02d}") for i in range(25)])
    seqs = [m.seq for m in result.new_messages]

    def texts(page: list[StoredMessage]) -> list[str]:
        return [m.content for m in page]

    newest = await store.history(TEAM, limit=10)
    assert texts(newest) == [f"m{i:02d}" for i in range(15, 25)]
    older = await store.history(TEAM, before_seq=newest[0].seq, limit=10)
    assert texts(older) == [f"m{i:02d}" for i in range(5, 15)]
    oldest = await store.history(TEAM, before_seq=older[0].seq, limit=10)
    assert texts(oldest) == [f"m{i:02d}" for i in range(5)]
    assert await store.history(TEAM, before_seq=oldest[0].seq) == []
    after = await store.history(TEAM, after_seq=seqs[9], limit=3)
    assert texts(after) == ["m10", "m11", "m12"]
    assert await store.history(TEAM, after_seq=seqs[-1]) == []
    assert await store.message_count(TEAM) == 25
    assert await store.history(Conversation.group("other")) == []


async def test_a_redelivered_message_is_stored_once(store: Store) -> None:
    message = from_bob("only once")
    first = await store.store_incoming([message])
    assert len(first.new_messages) == 1 and first.duplicates == 0
    again = await store.store_incoming([message, message])
    assert again.new_messages == [] and again.duplicates == 2
    await store.mark_shown([first.new_messages[0].seq])
    assert (await store.store_incoming([message])).to_show == []
    assert await store.message_count(TEAM) == 1
    assert (await summaries(store))[TEAM] == (1, False)


async def test_a_message_twice_in_one_batch_is_stored_and_shown_once(store: Store) -> None:
    # A delivery from a channel that died, and its redelivery, in the same batch.
    message = from_bob("after a reconnect")
    result = await store.store_incoming([message, message])
    assert [m.content for m in result.to_show] == ["after a reconnect"]
    assert len(result.new_messages) == 1 and result.duplicates == 1
    assert await store.message_count(TEAM) == 1


async def test_a_stored_but_unshown_message_is_shown_on_redelivery(store: Store) -> None:
    message = from_bob("crashed before showing")
    await store.store_incoming([message])
    # The process died before the sink showed it; the broker delivers it again.
    again = await store.store_incoming([message])
    assert [m.content for m in again.to_show] == ["crashed before showing"]
    assert again.new_messages == []


async def test_schema_is_versioned_and_in_wal_mode(store: Store) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"messages", "conversations", "outbox", "receipt_marks"} <= tables


async def test_a_cache_from_an_older_version_is_migrated_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "alice.sqlite3"
    store = await open_cache(path, "alice")
    await store.store_incoming([from_bob("from before the upgrade")])
    await store.close()
    # The next chat-tui adds a migration; the file it finds is one version behind.
    newer = [*schema.MIGRATIONS, "ALTER TABLE meta ADD COLUMN note TEXT"]
    monkeypatch.setattr(schema, "MIGRATIONS", newer)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(newer))

    upgraded = await open_cache(path, "alice")
    try:
        assert [m.content for m in await upgraded.history(TEAM)] == ["from before the upgrade"]
    finally:
        await upgraded.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert "note" in {row[1] for row in conn.execute("PRAGMA table_info(meta)")}


async def test_a_reopened_store_keeps_messages_outbox_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "alice.sqlite3"
    store = await open_cache(path, "alice")
    await store.store_incoming([from_bob("kept")])
    mine = SendMessage(message_id=uuid.uuid4(), sender_id="alice", recipient_id="bob", content="q")
    await store.enqueue_message(mine)
    await store.set_meta("theme", "nord")
    await store.close()

    reopened = await open_cache(path, "alice")
    try:
        assert [m.content for m in await reopened.history(TEAM)] == ["kept"]
        assert await reopened.pending_messages() == 1
        queued = await reopened.get_message(str(mine.message_id))
        assert queued is not None and queued.status == "queued"
        assert await reopened.get_meta("theme") == "nord"
    finally:
        await reopened.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_cache_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alice.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        await open_cache(path, "alice")


async def test_a_cache_behind_a_symlink_syncs_the_log_beside_the_real_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite follows the link and keeps its write-ahead log beside the real file; the
    # fsyncs that acks wait for must go to that log, not to a path beside the link.
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "alice.sqlite3"
    link.symlink_to(real / "alice.sqlite3")
    store = await open_cache(link, "alice")
    synced: list[str] = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    try:
        await store.store_incoming([from_bob("kept")], durable=True)
        assert synced == [str(real / "alice.sqlite3-wal")]
        assert not (tmp_path / "alice.sqlite3-wal").exists()
    finally:
        await store.close()
