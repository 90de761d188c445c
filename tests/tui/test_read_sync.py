"""The main screen's cache syncs: one at a time, a burst coalesced to one per interval,
and the last request always followed by a sync. No Textual: the sleeps are ours."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from chat_tui.tui.read_sync import ReadSync


class Recorder:
    """Counts the syncs, and holds each interval's sleep until the test ends it."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.sleeping = asyncio.Event()
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.sync = ReadSync(self.save, self.reload, self.spawn, sleep=self.sleep)

    async def save(self) -> None:
        self.events.append("save")

    async def reload(self) -> None:
        self.events.append("reload")

    def spawn(self, loop: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(loop))

    async def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        await self.wake.wait()
        self.wake.clear()

    async def end_interval(self) -> None:
        """Let the loop's current sleep end, and wait until it sleeps again or stops."""
        self.sleeping.clear()
        self.wake.set()
        for _ in range(20):
            await asyncio.sleep(0)

    async def first_sync(self) -> None:
        await asyncio.wait_for(self.sleeping.wait(), 2)


async def test_a_burst_of_requests_becomes_one_sync_per_interval_then_a_last_one() -> None:
    recorder = Recorder()
    for _ in range(5):
        recorder.sync.sync_soon()
    await recorder.first_sync()
    assert recorder.events == ["save", "reload"], "the first request syncs at once"
    for _ in range(5):
        recorder.sync.sync_soon()
    assert len(recorder.tasks) == 1, "requests during a sync wait for the running loop"
    await recorder.end_interval()
    assert recorder.events == ["save", "reload"] * 2, "the burst became one more sync"
    await recorder.end_interval()
    assert recorder.events == ["save", "reload"] * 2, "nothing wanted: no sync"
    assert recorder.tasks[0].done(), "the loop ends once nothing is wanted"
    recorder.sync.sync_soon()
    await recorder.first_sync()
    assert len(recorder.tasks) == 2, "a later request starts a new loop"
    assert recorder.events == ["save", "reload"] * 3
    await recorder.end_interval()
    assert all(task.done() for task in recorder.tasks)


async def test_a_sync_waits_for_the_one_in_flight() -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    order: list[str] = []

    async def slow_save() -> None:
        order.append("save starts")
        inside.set()
        await release.wait()
        order.append("save ends")

    async def reload() -> None:
        order.append("reload")

    sync = ReadSync(slow_save, reload, _no_background)
    first = asyncio.create_task(sync.sync_now())
    await inside.wait()
    inside.clear()
    second = asyncio.create_task(sync.save_reads())
    for _ in range(10):
        await asyncio.sleep(0)
    assert order == ["save starts"], "the second save waits for the first sync's"
    release.set()
    await asyncio.gather(first, second)
    # The waiting save was queued before the first sync's reload asked for its turn.
    assert order == ["save starts", "save ends", "save starts", "save ends", "reload"]


def _no_background(loop: Coroutine[Any, Any, None]) -> None:
    loop.close()
    raise AssertionError("only sync_soon starts a background loop")
