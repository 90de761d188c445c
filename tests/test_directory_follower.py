"""The directory follower sorts its batches like the other pipelines (`sort_batch`), but
the directory is a stream, which cannot dead-letter: an invalid entry is counted, logged
and skipped, never rejected, and it is acked with the rest of its batch, which on a
stream only grants credit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chat_tui.core.client import ChatClient
from chat_tui.core.directory import DirectoryFollower
from chat_tui.core.directory_snapshot import DirectorySnapshot
from chat_tui.protocol.names import directory_user_key
from tests.conftest import eventually
from tests.test_sender_checks import AccountsWorld, chat, directory_event
from tests.test_unknown_types import encoded, reaction


@dataclass(eq=False)
class StreamEntry:
    """A delivery from the directory stream that records how it was settled."""

    body: bytes
    routing_key: str
    user_id: str | None
    settles: list[tuple[str, StreamEntry]] = field(repr=False)
    channel_key: int | None = 1

    async def ack_through(self) -> None:
        self.settles.append(("ack_through", self))

    async def reject(self) -> None:
        self.settles.append(("reject", self))

    async def requeue(self) -> None:
        self.settles.append(("requeue", self))


async def test_invalid_entries_are_skipped_and_acked_with_their_batch_never_rejected() -> None:
    settles: list[tuple[str, StreamEntry]] = []

    def entry(body: bytes, user: str, user_id: str | None) -> StreamEntry:
        return StreamEntry(body, directory_user_key(user), user_id, settles)

    batch = [
        entry(encoded(directory_event("registered", "ann")), "ann", "ann"),
        entry(encoded(chat(sender_id="ann", recipient_id="bob")), "ann", "ann"),
        entry(encoded(reaction()), "ann", "ann"),
        # bob's registration, published by eve: it fails the sender check.
        entry(encoded(directory_event("registered", "bob")), "bob", "eve"),
        # The last of the batch: acking "through the last" must cover it too.
        entry(b"not json at all", "ann", "ann"),
    ]
    snapshot = DirectorySnapshot()
    follower = DirectoryFollower(snapshot, lambda: None, verify_senders=True)
    follower.started()
    for delivery in batch:
        follower.on_delivery(delivery)
    running = asyncio.create_task(follower.run())
    try:
        assert await follower.wait_caught_up(5)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert snapshot.users == {"ann"}
    assert (follower.rejected, follower.unverified, follower.invalid) == (3, 1, 2)
    assert follower.unknown_types == 1
    assert settles == [("ack_through", batch[-1])]


@pytest.fixture(params=[True, False], ids=["accounts", "open"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AccountsWorld]:
    made = AccountsWorld(tmp_path, accounts=request.param)
    yield made
    await made.close()


async def test_malformed_directory_entries_are_skipped_and_the_next_ones_folded(
    world: AccountsWorld,
) -> None:
    alice = await world.client("alice")
    login = "bob" if world.accounts else "guest"
    key = directory_user_key("bob")
    assert world.broker.publish_raw(key, b"{not json", user_id=login)
    assert world.broker.publish_raw(key, encoded(chat(sender_id="bob")), user_id=login)
    world.publish_raw(key, directory_event("registered", "bob"), user_id=login)
    await eventually(lambda: _knows(alice, "bob"), what="the entry after them folded")
    assert (alice.directory.rejected, alice.directory.invalid) == (2, 2)
    assert alice.directory.unverified == 0
    assert world.dead_letters() == []
    # Still in the stream: a client that starts later reads them, and skips them too.
    carol = await world.client("carol")
    assert "bob" in await carol.store.users()
    assert carol.directory.invalid == 2


async def _knows(client: ChatClient, user: str) -> bool:
    return user in await client.store.users()
