"""History and search through ChatClient in a deployment with accounts (a private node
with the management plugin, set up by `chat-tui admin`): the client's requests carry its
login as the AMQP user_id, its account may send them, and the archive answers as that
account, so a joiner gets the group's history and a DM is searchable by its parties only."""

from __future__ import annotations

import pytest

from chat_tui.core.client import ChatClient
from chat_tui.core.errors import ArchiveRefusedError
from chat_tui.protocol.conversations import Conversation
from tests.archive.test_service_accounts import (  # noqa: F401  (the fixtures)
    Deployment,
    deployment,
    node,
    provisioned,
    running,
)
from tests.conftest import eventually, has_group, knows
from tests.history.conftest import texts

pytestmark = pytest.mark.broker


async def test_a_joiner_gets_history_and_search_reads_only_ones_own_dms(
    running: Deployment,  # noqa: F811  (the fixture imported above)
) -> None:
    accounts = running.accounts
    alice = await accounts.client(running.alice)
    bob = await accounts.client(running.bob)
    eve = await accounts.client(running.eve)
    lobby = Conversation.group("lobby")
    await alice.create_group("lobby")
    await eventually(lambda: knows(alice, bob.me, eve.me), what="alice to know bob and eve")
    for conversation, text in ((lobby, "welcome"), (Conversation.dm(bob.me), "secret plan")):
        sent = await alice.send(conversation, text)
        assert (await alice.wait_sent(sent.message_id, timeout=10)).status != "failed"
    await eventually(lambda: has_group(bob, "lobby"), what="bob to see the lobby")

    async def archived() -> bool:
        words = [await alice.history.archive.search(w, None, 10) for w in ("welcome", "secret")]
        return all(len(found.hits) == 1 for found in words)

    await eventually(archived, timeout=15, what="the archive to hold alice's messages")
    await bob.join_group("lobby")
    await eventually(lambda: _texts_are(bob, lobby, ["welcome"]), timeout=15, what="bob's backfill")
    mine = await bob.history.search("secret")
    assert mine.archive == "answered" and [h.content for h in mine.hits] == ["secret plan"]
    theirs = await eve.history.search("secret")
    assert theirs.archive == "answered" and theirs.hits == []
    try:
        await eve.history.load_older(lobby)
    except ArchiveRefusedError as refused:
        assert "forbidden" in str(refused)
    else:
        raise AssertionError("eve read the history of a group she is not in")


async def _texts_are(client: ChatClient, conversation: Conversation, wanted: list[str]) -> bool:
    return texts(await client.cache.history(conversation)) == wanted
