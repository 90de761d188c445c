"""History and search end to end through the broker, on both databases, asked by a
foreign client (plain aio-pika, direct reply-to): a member gets pages and hits; anyone
else, and anything malformed, gets a refusal, never an empty page; the worker answers
the next request as if nothing happened."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from chat_tui.protocol.archive import (
    ArchiveRefusal,
    DmPeers,
    DmPeersRequest,
    HistoryPage,
    HistoryRequest,
    SearchRequest,
    SearchResults,
)
from chat_tui.protocol.models import MAX_BODY_BYTES
from chat_tui.protocol.names import ARCHIVE_REQUEST_KEY
from tests.archive.service_world import (
    ArchiveWorld,
    chat,
    spaced,
)
from tests.conftest import eventually


async def lobby_with_history(world: ArchiveWorld, count: int) -> list[str]:
    """alice and bob in #lobby, `count` messages of alice's archived; their texts."""
    await world.register("alice", "bob", "eve")
    await world.join("lobby", "alice", "bob")
    await world.start_worker()
    messages = spaced(count, "alice", "lobby")
    await world.send(messages)
    await eventually(lambda: world.holds(count), what="the history archived")
    return [m.content for m in messages]


async def test_a_member_pages_through_a_groups_history_both_ways(world: ArchiveWorld) -> None:
    texts = await lobby_with_history(world, 25)
    newest = await world.ask(HistoryRequest(requester_id="bob", group_id="lobby", limit=10))
    assert isinstance(newest, HistoryPage)
    assert [m.content for m in newest.messages] == texts[15:]
    assert newest.next_cursor is not None
    older = await world.ask(
        HistoryRequest(requester_id="bob", group_id="lobby", limit=10, cursor=newest.next_cursor)
    )
    assert isinstance(older, HistoryPage)
    assert [m.content for m in older.messages] == texts[5:15]
    oldest = await world.ask(
        HistoryRequest(requester_id="bob", group_id="lobby", limit=10, cursor=older.next_cursor)
    )
    assert isinstance(oldest, HistoryPage)
    assert [m.content for m in oldest.messages] == texts[:5]
    assert oldest.next_cursor is None
    forward = await world.ask(
        HistoryRequest(requester_id="bob", group_id="lobby", direction="newer", limit=20)
    )
    assert isinstance(forward, HistoryPage)
    assert [m.content for m in forward.messages] == texts[:20]
    rest = await world.ask(
        HistoryRequest(
            requester_id="bob",
            group_id="lobby",
            direction="newer",
            limit=20,
            cursor=forward.next_cursor,
        )
    )
    assert isinstance(rest, HistoryPage)
    assert [m.content for m in rest.messages] == texts[20:]


async def test_a_page_stays_under_the_body_limit_and_skips_nothing(world: ArchiveWorld) -> None:
    await world.register("alice")
    await world.join("lobby", "alice")
    await world.start_worker()
    # 40 messages of 15 KiB: 600 KiB in all, some ten bodies' worth.
    messages = spaced(40, "alice", "lobby", text="x" * 15_000)
    await world.send(messages)
    await eventually(lambda: world.holds(40), what="the history archived")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        request = HistoryRequest(requester_id="alice", group_id="lobby", limit=200, cursor=cursor)
        page = await world.ask(request)
        assert isinstance(page, HistoryPage)
        assert len(page.to_body()) <= MAX_BODY_BYTES
        assert page.messages, "a page with room for a message holds one"
        seen[:0] = [m.content for m in page.messages]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [m.content for m in messages]
    assert pages >= 10


async def test_search_finds_what_the_requester_may_read_and_takes_syntax_as_text(
    world: ArchiveWorld,
) -> None:
    await world.register("alice", "bob", "eve")
    await world.join("lobby", "alice", "bob")
    await world.join("secret", "eve")
    await world.start_worker()
    await world.send(
        [
            chat("alice", group="lobby", content="the deploy went fine"),
            chat("eve", group="secret", content="the deploy key is hunter2"),
            chat("alice", to="bob", content="deploy tonight?"),
            chat("eve", to="alice", content="a deploy between eve and alice"),
        ]
    )
    await eventually(lambda: world.holds(4), what="the messages archived")
    found = await world.ask(SearchRequest(requester_id="bob", query="deploy"))
    assert isinstance(found, SearchResults)
    assert {hit.message.content for hit in found.hits} == {
        "the deploy went fine",
        "deploy tonight?",
    }
    assert all(hit.snippet for hit in found.hits)
    within = await world.ask(SearchRequest(requester_id="bob", query="deploy", peer_id="alice"))
    assert isinstance(within, SearchResults)
    assert [hit.message.content for hit in within.hits] == ["deploy tonight?"]
    for query in ['"deploy', "deploy NEAR(", "deploy*", "-deploy", "(deploy", "deploy OR"]:
        answer = await world.ask(SearchRequest(requester_id="bob", query=query))
        assert isinstance(answer, SearchResults), (query, answer)


async def test_a_non_member_is_refused_a_groups_history_and_search(world: ArchiveWorld) -> None:
    await lobby_with_history(world, 3)
    for request in (
        HistoryRequest(requester_id="eve", group_id="lobby"),
        SearchRequest(requester_id="eve", query="message", group_id="lobby"),
        HistoryRequest(requester_id="mallory", peer_id="alice"),  # not a registered user
    ):
        answer = await world.ask(request)
        assert isinstance(answer, ArchiveRefusal), request
        assert answer.reason == "forbidden"
    # Search across everything finds nothing of #lobby for her: it is not hers to read.
    answer = await world.ask(SearchRequest(requester_id="eve", query="message"))
    assert isinstance(answer, SearchResults) and answer.hits == ()


async def test_a_user_is_told_whom_she_has_dms_with_the_most_recent_first(
    world: ArchiveWorld,
) -> None:
    await world.register("alice", "bob", "carol", "dave")
    await world.join("lobby", "alice", "dave")
    await world.start_worker()
    start = datetime.now(UTC) - timedelta(hours=1)
    messages = [
        chat("bob", to="alice", content="old", at=start),
        chat("alice", to="carol", content="newer", at=start + timedelta(minutes=10)),
        chat("alice", to="bob", content="newest", at=start + timedelta(minutes=20)),
        chat("alice", to="alice", content="a note to self", at=start + timedelta(minutes=5)),
        chat("carol", to="bob", content="not hers", at=start + timedelta(minutes=30)),
        chat("dave", group="lobby", content="a group, not a DM", at=start),
    ]
    await world.send(messages)
    await eventually(lambda: world.holds(len(messages)), what="the DMs archived")

    answer = await world.ask(DmPeersRequest(requester_id="alice"))
    assert isinstance(answer, DmPeers)
    assert [p.peer_id for p in answer.peers] == ["bob", "carol", "alice"]
    assert answer.peers[0].last_at == messages[2].timestamp
    two = await world.ask(DmPeersRequest(requester_id="alice", limit=2))
    assert isinstance(two, DmPeers) and [p.peer_id for p in two.peers] == ["bob", "carol"]
    nobody = await world.ask(DmPeersRequest(requester_id="dave"))
    assert isinstance(nobody, DmPeers) and nobody.peers == ()
    stranger = await world.ask(DmPeersRequest(requester_id="mallory"))
    assert isinstance(stranger, ArchiveRefusal) and stranger.reason == "forbidden"


async def test_a_member_who_left_is_refused_and_one_who_just_joined_is_answered(
    world: ArchiveWorld,
) -> None:
    await lobby_with_history(world, 3)
    await world.join("lobby", "eve")
    # No wait: a newcomer asks for the history the moment she joined, and the archive
    # looks at the directory again before it would refuse her.
    joined = await world.ask(HistoryRequest(requester_id="eve", group_id="lobby"))
    assert isinstance(joined, HistoryPage) and len(joined.messages) == 3
    await world.leave("lobby", "bob")

    async def bob_refused() -> bool:
        left = await world.ask(HistoryRequest(requester_id="bob", group_id="lobby"))
        return isinstance(left, ArchiveRefusal) and left.reason == "forbidden"

    # Once the archive has folded his leaving (a request that overtook it is answered
    # as one sent a moment before he left would be).
    await eventually(bob_refused, what="bob refused after he left", timeout=5)


async def test_bad_requests_are_refused_and_the_worker_survives_them(world: ArchiveWorld) -> None:
    await lobby_with_history(world, 3)
    valid = HistoryRequest(requester_id="bob", group_id="lobby")
    fields = json.loads(valid.to_body())
    cases = {
        b"not json": "malformed",
        b"\xff\xfe": "malformed",
        json.dumps([fields]).encode(): "malformed",
        json.dumps({**fields, "limit": 10_000}).encode(): "malformed",
        json.dumps({**fields, "peer_id": "alice"}).encode(): "malformed",
        json.dumps({**fields, "type": "DELETE_EVERYTHING"}).encode(): "malformed",
        json.dumps({**fields, "requester_id": "Bob!"}).encode(): "malformed",
        json.dumps({**fields, "cursor": "a1." + "A" * 31}).encode(): "malformed",
        json.dumps({**fields, "cursor": "not-a-cursor-of-ours"}).encode(): "malformed",
        json.dumps({**fields, "padding": "x" * MAX_BODY_BYTES}).encode(): "too_large",
        json.dumps({"type": "SEARCH_REQUEST", "requester_id": "bob", "query": " "}).encode(): (
            "malformed"
        ),
    }
    for body, reason in cases.items():
        answer = await world.ask(body)
        assert isinstance(answer, ArchiveRefusal), body[:80]
        assert answer.reason == reason, (body[:80], answer)
        assert answer.detail
    # A request without reply_to has nowhere to go: dropped, and the worker goes on.
    await world.publish(valid.to_body(), ARCHIVE_REQUEST_KEY, correlation_id=uuid.uuid4().hex)
    page = await world.ask(valid)
    assert isinstance(page, HistoryPage) and len(page.messages) == 3
    assert await world.depth(world.names.archive_requests_queue) == 0
