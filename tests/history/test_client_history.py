"""History and search through the client core, end to end: the real broker and the
real archive (`chat-tui archive`, in-process), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity

from chat_tui.core import history as history_module
from chat_tui.core.archive_client import ArchiveClient
from chat_tui.core.client import ChatClient
from chat_tui.core.errors import ArchiveRefusedError, ArchiveUnavailableError
from chat_tui.protocol.archive import DmPeers
from chat_tui.protocol.conversations import Conversation
from tests.conftest import Deployment, eventually, knows
from tests.history.conftest import HistorySink, RunningArchive, delete_archive_queues, texts

LOBBY = Conversation.group("lobby")


async def user(
    deployment: Deployment, name: str, **overrides: object
) -> tuple[ChatClient, HistorySink]:
    sink = HistorySink()
    client = await deployment.client(name, sink, **overrides)
    return client, sink


async def archived(client: ChatClient, conversation: Conversation, count: int) -> None:
    """Wait until the archive holds `count` messages of `conversation` (as `client` may read)."""

    async def holds() -> bool:
        total, cursor = 0, None
        while True:
            page = await client.history.archive.history(conversation, cursor, "older", 200)
            total += len(page.messages)
            if page.next_cursor is None or total >= count:
                return total >= count
            cursor = page.next_cursor

    await eventually(holds, timeout=15, what=f"{count} messages of {conversation} in the archive")


async def lobby_with(deployment: Deployment, *lines: str) -> ChatClient:
    alice, _ = await user(deployment, "alice")
    await alice.create_group("lobby")
    for line in lines:
        sent = await alice.send(LOBBY, line)
        await alice.wait_sent(sent.message_id, timeout=10)
    await archived(alice, LOBBY, len(lines))
    return alice


async def test_a_joiner_gets_the_groups_history_not_unread_and_without_receipts(
    deployment: Deployment, any_archive: RunningArchive
) -> None:
    await lobby_with(deployment, "welcome", "the rules", "have fun")
    bob, sink = await user(deployment, "bob")
    await bob.join_group("lobby")

    async def has_history() -> bool:
        return texts(await bob.cache.history(LOBBY)) == ["welcome", "the rules", "have fun"]

    await eventually(has_history, what="the lobby's history in bob's cache")
    assert sink.filled == [(LOBBY, 3)]
    assert sink.shown == []  # history is not news
    summary = {s.conversation: s for s in await bob.cache.conversations()}[LOBBY]
    assert summary.unread_count == 0
    assert await bob.outbox_backlog() == 0  # no receipts for it
    # What comes live afterwards follows it.
    carol, _ = await user(deployment, "carol")
    await carol.join_group("lobby")
    await carol.wait_sent((await carol.send(LOBBY, "hi all")).message_id, timeout=10)
    await eventually(lambda: "hi all" in sink.contents(), what="carol's message at bob")
    assert texts(await bob.cache.history(LOBBY))[-1] == "hi all"


@pytest.mark.parametrize("archive_lists_dms", [True, False], ids=["dm-peers", "older-archive"])
async def test_a_new_device_fills_its_conversations_own_messages_included(
    deployment: Deployment,
    archive: RunningArchive,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    archive_lists_dms: bool,
) -> None:
    if archive_lists_dms:
        # Her DMs can come only from the archive's list, not from asking per user.
        monkeypatch.setattr(history_module, "FILL_DMS_WITH_AT_MOST", 0)
    else:

        async def refused(_self: ArchiveClient) -> DmPeers:
            raise ArchiveRefusedError("the archive refused: not an archive request (malformed)")

        monkeypatch.setattr(ArchiveClient, "dm_peers", refused)
    alice = await lobby_with(deployment, "group line")
    bob, _ = await user(deployment, "bob")
    await bob.join_group("lobby")
    await eventually(lambda: has_all(bob, LOBBY, 1), what="bob's backfill")
    for text, sender, to in (("hi bob", alice, "bob"), ("hi alice", bob, "alice")):
        sent = await sender.send(Conversation.dm(to), text)
        await sender.wait_sent(sent.message_id, timeout=10)
    await archived(alice, Conversation.dm("bob"), 2)

    # alice on a second machine: an empty cache, her inbox kept by the first.
    await alice.stop()
    deployment.clients.remove(alice)
    sink = HistorySink()
    laptop = await deployment.client("alice", sink, data_dir=tmp_path / "laptop")

    async def filled() -> bool:
        return texts(await laptop.cache.history(Conversation.dm("bob"))) == [
            "hi bob",
            "hi alice",
        ] and texts(await laptop.cache.history(LOBBY)) == ["group line"]

    await eventually(filled, timeout=20, what="the new device's conversations")
    own = [m for m in await laptop.cache.history(Conversation.dm("bob")) if m.outgoing]
    assert [m.content for m in own] == ["hi bob"] and own[0].status == "sent"
    assert {c for c, _n in sink.filled} >= {LOBBY, Conversation.dm("bob")}
    assert all(s.unread_count == 0 for s in await laptop.cache.conversations())


async def has_all(client: ChatClient, conversation: Conversation, count: int) -> bool:
    return len(await client.cache.history(conversation, limit=10_000)) >= count


async def test_search_merges_the_cache_and_the_archive_and_opens_an_archived_hit(
    deployment: Deployment, any_archive: RunningArchive
) -> None:
    lines = [f"release note {i}" for i in range(250)] + ["the release is friday"]
    alice = await lobby_with(deployment, *lines)
    bob, _ = await user(deployment, "bob")
    await bob.join_group("lobby")
    await eventually(lambda: has_all(bob, LOBBY, 200), what="bob's backfill of 200")
    # bob holds the newest 200; the archive has all 251.
    outcome = await bob.history.search("release", limit=100)
    assert outcome.archive == "answered" and outcome.archive_detail is None
    ids = [hit.message_id for hit in outcome.hits]
    assert len(ids) == len(set(ids)) == 100
    cached = {m.message_id for m in await bob.cache.history(LOBBY, limit=1000)}
    assert all(hit.in_cache == (hit.message_id in cached) for hit in outcome.hits)
    assert all(
        hit.conversation == LOBBY and "release" in hit.snippet.lower() for hit in outcome.hits
    )

    friday = await bob.history.search('"friday', LOBBY)  # FTS syntax is text
    assert [h.content for h in friday.hits] == ["the release is friday"]
    assert friday.hits[0].in_cache and friday.hits[0].seq is not None

    oldest = await alice.history.search("note 0")
    assert oldest.hits and oldest.hits[0].content.startswith("release note 0")
    # For bob "release note 0" is only in the archive: opening it pages it in.
    hit = next(
        h
        for h in (await bob.history.search("release note 0", limit=100)).hits
        if h.content == "release note 0"
    )
    assert not hit.in_cache
    opened = await bob.history.open_hit(hit)
    assert opened.content == "release note 0"
    window = await bob.cache.around(LOBBY, opened.seq, before=2, after=2)
    assert texts(window) == ["release note 0", "release note 1", "release note 2"]
    everything = texts(await bob.cache.history(LOBBY, limit=1000))
    assert everything == lines  # continuous, in order, no copy twice


async def test_scrolling_up_pages_older_history_until_the_beginning(
    deployment: Deployment, archive: RunningArchive
) -> None:
    lines = [f"line {i:03}" for i in range(230)]
    await lobby_with(deployment, *lines)
    bob, sink = await user(deployment, "bob")
    await bob.join_group("lobby")
    await eventually(lambda: has_all(bob, LOBBY, 200), what="bob's backfill")
    oldest = (await bob.cache.history(LOBBY, limit=1000))[0]
    assert await bob.history.load_older(LOBBY, limit=20) == 20
    page = await bob.cache.history(LOBBY, before_seq=oldest.seq, limit=100)
    assert texts(page) == lines[10:30]
    assert await bob.history.load_older(LOBBY, limit=20) == 10
    assert await bob.history.load_older(LOBBY) == 0
    assert await bob.cache.at_beginning(LOBBY)
    assert texts(await bob.cache.history(LOBBY, limit=1000)) == lines
    assert [n for c, n in sink.filled if c == LOBBY] == [200, 20, 10]


async def test_without_an_archive_one_notice_and_chatting_goes_on(
    deployment: Deployment,
) -> None:
    alice, _ = await user(deployment, "alice")
    await alice.create_group("lobby")
    await alice.wait_sent((await alice.send(LOBBY, "no archive here")).message_id, timeout=10)
    bob, sink = await user(deployment, "bob")
    started = asyncio.get_running_loop().time()
    await bob.join_group("lobby")
    with pytest.raises(ArchiveUnavailableError, match="not available on this deployment"):
        await bob.history.load_older(LOBBY)
    assert asyncio.get_running_loop().time() - started < 3  # returned at once, not timed out
    outcome = await bob.history.search("archive")
    assert outcome.archive == "unavailable" and outcome.hits == []
    await alice.wait_sent((await alice.send(LOBBY, "still chatting")).message_id, timeout=10)
    await eventually(lambda: "still chatting" in sink.contents(), what="a live message")
    assert [h.content for h in (await bob.history.search("chatting")).hits] == ["still chatting"]
    assert len(sink.archive_notices) == 1
    assert "not available on this deployment" in sink.archive_notices[0]
    assert sink.problems == []


async def test_an_archive_that_stopped_answering_times_out_and_chatting_goes_on(
    deployment: Deployment, tmp_path: Path
) -> None:
    running = RunningArchive(deployment, str(tmp_path / "archive.sqlite3"))
    await running.start()
    await running.stop()  # its queues stay, nobody consumes them
    try:
        bob, sink = await user(deployment, "bob", archive_timeout=1.0)
        started = asyncio.get_running_loop().time()
        outcome = await bob.history.search("anything")
        assert outcome.archive == "unavailable"
        assert "did not answer within 1 s" in (outcome.archive_detail or "")
        assert 0.9 < asyncio.get_running_loop().time() - started < 3
        with pytest.raises(ArchiveUnavailableError):
            await bob.history.load_older(Conversation.dm("alice"))
        assert len(sink.archive_notices) == 1
    finally:
        for client in deployment.clients:
            await client.stop()
        deployment.clients.clear()
        await delete_archive_queues(deployment)


async def test_a_refusal_is_surfaced_with_the_archives_reason(
    deployment: Deployment, archive: RunningArchive
) -> None:
    await lobby_with(deployment, "members only")
    mallory, sink = await user(deployment, "mallory")
    with pytest.raises(ArchiveRefusedError, match="forbidden"):
        await mallory.history.load_older(LOBBY)
    assert sink.archive_notices == []  # the archive is there; it said no
    assert await mallory.cache.history(LOBBY) == []


async def test_the_requester_asks_again_after_its_channel_was_closed(
    deployment: Deployment, archive: RunningArchive
) -> None:
    alice = await lobby_with(deployment, "before", "after")
    assert len((await alice.history.search("before")).hits) == 1
    # A channel error closes the archive channel; aio-pika reopens it, and the next
    # request must consume direct reply-to again on the new one.
    requester = alice.history._requests
    assert requester is not None and requester._channel is not None
    underlay = await requester._channel.get_underlay_channel()
    with pytest.raises(ChannelNotFoundEntity):
        await underlay.exchange_declare("no.such.exchange", passive=True)
    outcome = await alice.history.search("after")
    assert outcome.archive == "answered" and [h.content for h in outcome.hits] == ["after"]


async def cli(deployment: Deployment, *args: str) -> tuple[int, str, str]:
    """`chat-tui ARGS` as a subprocess, without blocking the archive on this loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chat_tui",
        *args,
        env=deployment.cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_searches_the_cache_and_the_archive(
    deployment: Deployment, archive: RunningArchive
) -> None:
    alice = await lobby_with(deployment, "the deploy is at noon", "lunch after the deploy")
    bob, _ = await user(deployment, "bob")
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")
    await alice.wait_sent((await alice.send(Conversation.dm("bob"), "deploy keys")).message_id, 10)
    await archived(alice, Conversation.dm("bob"), 1)
    for client in (alice, bob):
        await client.stop()
        deployment.clients.remove(client)
    # bob's next start is on a machine of its own: nothing cached.
    env_dir = deployment.data_dir / "bob-elsewhere"
    code, out, err = await cli(deployment, "search", "deploy", "--user", "alice", "--json")
    assert code == 0, err
    found = [json.loads(line) for line in out.splitlines()]
    assert {f["content"] for f in found} == {
        "the deploy is at noon",
        "lunch after the deploy",
        "deploy keys",
    }
    assert all(f["in_cache"] for f in found)
    code, out, _ = await cli(deployment, "search", "deploy", "--user", "alice", "--dm", "bob")
    assert code == 0 and out.count("\n") == 1 and "@bob  alice: deploy keys" in out
    # bob has nothing cached: his hits come from the archive, and only what he may read.
    code, out, err = await cli(
        deployment, "search", '"deploy* -keys', "--user", "bob", "--data-dir", str(env_dir)
    )
    assert code == 0, err
    assert out.count("[archive]") == 1 and "deploy keys" in out
    code, out, err = await cli(deployment, "search", "nothing-like-it", "--user", "alice")
    assert code == 3 and out == "" and "no message matches" in err
    code, _, err = await cli(deployment, "search", "   ", "--user", "alice")
    assert code == 1 and "empty" in err


async def test_the_cli_says_when_only_the_cache_was_searched(deployment: Deployment) -> None:
    alice, _ = await user(deployment, "alice")
    await alice.create_group("lobby")
    await alice.wait_sent((await alice.send(LOBBY, "cached only")).message_id, timeout=10)
    await alice.stop()
    deployment.clients.remove(alice)
    code, out, err = await cli(deployment, "search", "cached", "--user", "alice")
    assert code == 0 and "#lobby  alice: cached only" in out
    assert "only the local cache was searched" in err
    assert "not available on this deployment" in err


async def test_a_client_whose_inbox_was_lost_fills_what_it_missed_in_order(
    deployment: Deployment, archive: RunningArchive, raw: AbstractRobustConnection
) -> None:
    alice = await lobby_with(deployment, "before she left")
    bob, _ = await user(deployment, "bob")
    await bob.join_group("lobby")
    await eventually(lambda: has_all(bob, LOBBY, 1), what="bob's backfill")
    await alice.stop()
    deployment.clients.remove(alice)
    # More than one page of it: the fill pages back until it reaches what is cached.
    missed = [f"missed {i:03}" for i in range(250)]
    for line in missed:
        await bob.send(LOBBY, line)
    assert await bob.flush(30)
    await archived(bob, LOBBY, 251)
    # Her inbox, with what it kept for her, is gone (deleted, or never kept that long).
    channel = await raw.channel()
    await channel.queue_delete(deployment.names.inbox_queue("alice"))
    await channel.close()

    sink = HistorySink()
    back = await deployment.client("alice", sink)
    await eventually(lambda: has_all(back, LOBBY, 251), what="what alice missed, from the archive")
    assert texts(await back.cache.history(LOBBY, limit=1000)) == ["before she left", *missed]
    summary = {s.conversation: s for s in await back.cache.conversations()}[LOBBY]
    assert summary.unread_count == 0
    assert sink.shown == [] and (LOBBY, 250) in sink.filled


async def test_chat_tui_join_brings_the_groups_history_for_chat_tui_history(
    deployment: Deployment, archive: RunningArchive
) -> None:
    await lobby_with(deployment, "first", "second")
    await user(deployment, "bob")  # registered
    for client in deployment.clients:
        await client.stop()
    deployment.clients.clear()
    code, out, err = await cli(deployment, "join", "#lobby", "--user", "bob")
    assert code == 0 and "joined lobby" in out, err
    code, out, err = await cli(deployment, "history", "--group", "lobby", "--user", "bob")
    assert code == 0, err
    assert [line.split(": ", 1)[1] for line in out.splitlines()] == ["first", "second"]
