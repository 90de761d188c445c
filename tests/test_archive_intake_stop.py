"""A stopping archive worker settles what it already holds: the batch in progress and
the prefetch behind it are committed and acked, not handed back for a redelivery. A
database that cannot take them makes `finish` give up after its timeout, leaving the
rest unacked for the broker to redeliver, with nothing dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest

from chat_tui.core.archive_intake import ArchiveIntake
from chat_tui.protocol.models import SendMessage
from chat_tui.protocol.names import group_key


class Channel:
    """Delivery tags in order, and what was settled through them."""

    def __init__(self) -> None:
        self.acked_through = 0
        self.rejected: list[int] = []
        self.requeued: list[int] = []


class FakeDelivery:
    def __init__(self, channel: Channel, tag: int, message: SendMessage) -> None:
        self._channel = channel
        self.tag = tag
        self.body = message.to_body()
        self.routing_key = group_key("lobby")
        self.user_id: str | None = None

    @property
    def channel_key(self) -> int | None:
        return id(self._channel)

    async def ack_through(self) -> None:
        self._channel.acked_through = max(self._channel.acked_through, self.tag)

    async def reject(self) -> None:
        self._channel.rejected.append(self.tag)

    async def requeue(self) -> None:
        self._channel.requeued.append(self.tag)


def deliveries(channel: Channel, count: int) -> list[FakeDelivery]:
    return [
        FakeDelivery(
            channel,
            tag,
            SendMessage(
                message_id=uuid.uuid4(),
                sender_id="alice",
                group_id="lobby",
                content=f"message {tag}",
            ),
        )
        for tag in range(1, count + 1)
    ]


class SlowStore:
    """Commits a batch in `delay` seconds, or fails every time if `failing`."""

    def __init__(self, delay: float = 0.01, *, failing: bool = False) -> None:
        self.delay = delay
        self.failing = failing
        self.stored: list[str] = []

    async def __call__(self, messages: Sequence[SendMessage]) -> int:
        await asyncio.sleep(self.delay)
        if self.failing:
            raise OSError("the database is down")
        self.stored += [m.content for m in messages]
        return len(messages)


@pytest.fixture
async def running() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_finish_commits_and_acks_the_prefetch_behind_the_batch_in_progress(
    running: list[asyncio.Task[None]],
) -> None:
    store = SlowStore()
    intake = ArchiveIntake(store, batch_size=100)
    running.append(asyncio.create_task(intake.run()))
    channel = Channel()
    held = deliveries(channel, 350)
    for delivery in held:
        intake.on_delivery(delivery)
    await asyncio.sleep(0)  # the first batch is in progress, the rest waits behind it
    assert len(intake.batcher) > 0

    assert await intake.finish(timeout=5)
    assert channel.acked_through == 350
    assert store.stored == [f"message {tag}" for tag in range(1, 351)]
    assert channel.rejected == channel.requeued == []
    assert intake.counters.stored == 350


async def test_finish_with_nothing_in_hand_returns_at_once(
    running: list[asyncio.Task[None]],
) -> None:
    intake = ArchiveIntake(SlowStore())
    running.append(asyncio.create_task(intake.run()))
    async with asyncio.timeout(0.5):
        assert await intake.finish(timeout=5)


async def test_finish_gives_up_on_a_database_that_is_down_and_dead_letters_nothing(
    running: list[asyncio.Task[None]],
) -> None:
    intake = ArchiveIntake(SlowStore(failing=True), batch_size=100)
    running.append(asyncio.create_task(intake.run()))
    channel = Channel()
    for delivery in deliveries(channel, 250):
        intake.on_delivery(delivery)

    assert not await intake.finish(timeout=0.3)
    assert channel.acked_through == 0
    assert channel.rejected == []
    assert intake.failing
