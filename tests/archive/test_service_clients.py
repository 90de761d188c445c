"""chat-tui's own clients against the real archive service, on both databases: a
newcomer who joins a group gets its history in her cache, and a search finds what is
only in the archive. (The client's side is tested in depth by its own suites; this is
the two halves meeting.)"""

from __future__ import annotations

from pathlib import Path

from chat_tui.protocol.conversations import Conversation
from tests.archive.service_world import archive_world
from tests.conftest import Deployment, eventually


async def test_a_newcomer_gets_the_history_and_finds_it_in_search(
    deployment: Deployment, archive_db: str, tmp_path: Path
) -> None:
    async with archive_world(
        deployment.amqp_url, tmp_path / "archive", archive_db, namespace=deployment.namespace
    ) as world:
        await world.start_worker()
        alice = await deployment.client("alice")
        await alice.create_group("lobby")
        lobby = Conversation.group("lobby")
        for n in range(30):
            await alice.send(lobby, f"before carol came, number {n}")
        await alice.flush(10)
        await eventually(lambda: world.holds(30), what="the lobby archived")

        carol = await deployment.client("carol")
        await carol.join_group("lobby")

        async def carol_has_history() -> bool:
            return len(await carol.cache.history(lobby, limit=100)) == 30

        await eventually(carol_has_history, what="carol's cache filled from the archive")
        cached = await carol.cache.history(lobby, limit=100)
        assert [m.content for m in cached] == [f"before carol came, number {n}" for n in range(30)]
        found = await carol.history.search("number 17")
        assert found.archive == "answered", found.archive_detail
        assert [hit.content for hit in found.hits] == ["before carol came, number 17"]
