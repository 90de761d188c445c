"""The client's background tasks stop together: none outlives stop()."""

from __future__ import annotations

import asyncio
from typing import Any

from chat_tui.core.background import BackgroundTasks


async def test_stop_waits_for_every_task_even_one_that_cleans_up_slowly() -> None:
    cleaned_up = asyncio.Event()

    async def forever() -> None:
        await asyncio.Event().wait()

    async def slow_to_clean_up() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            # Like the inbox pipeline's TaskGroup: it needs the loop after cancel().
            await asyncio.sleep(0.05)
            cleaned_up.set()

    tasks = BackgroundTasks(on_failure=lambda error: None)
    # A quick one before the slow one: its done callback shrinks the collection while
    # stop() waits, which once made stop() skip the task behind it.
    spawned = [tasks.spawn(forever()), tasks.spawn(slow_to_clean_up()), tasks.spawn(forever())]
    await asyncio.sleep(0)
    await tasks.stop()
    assert cleaned_up.is_set()
    assert all(task.done() for task in spawned)


async def test_a_task_spawned_while_stopping_is_stopped_too() -> None:
    tasks = BackgroundTasks(on_failure=lambda error: None)
    late: list[asyncio.Task[Any]] = []

    async def spawns_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            late.append(tasks.spawn(asyncio.Event().wait()))

    tasks.spawn(spawns_on_cancel())
    await asyncio.sleep(0)
    await tasks.stop()
    assert late and late[0].done()


async def test_a_failed_task_is_reported() -> None:
    failures: list[BaseException] = []
    tasks = BackgroundTasks(on_failure=failures.append)

    async def fails() -> None:
        raise ValueError("boom")

    task = tasks.spawn(fails())
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert [str(f) for f in failures] == ["boom"]
    await tasks.stop()


async def test_a_lasting_loop_cancelled_by_someone_else_is_reported() -> None:
    # As aiormq fails an ack's future with CancelledError when its connection closes.
    failures: list[BaseException] = []
    tasks = BackgroundTasks(on_failure=failures.append)

    async def follower_loop() -> None:
        raise asyncio.CancelledError

    task = tasks.spawn(follower_loop(), lasting=True)
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert [str(f) for f in failures] == [
        "test_a_lasting_loop_cancelled_by_someone_else_is_reported.<locals>.follower_loop "
        "was cancelled before the client stopped"
    ]
    await tasks.stop()


async def test_a_lasting_loop_that_returns_is_reported_but_a_short_task_is_not() -> None:
    failures: list[BaseException] = []
    tasks = BackgroundTasks(on_failure=failures.append)

    async def done_at_once() -> None:
        return None

    short, lasting = tasks.spawn(done_at_once()), tasks.spawn(done_at_once(), lasting=True)
    await asyncio.gather(short, lasting)
    await asyncio.sleep(0)
    assert len(failures) == 1 and "done_at_once returned before" in str(failures[0])
    await tasks.stop()


async def test_stop_cancelling_a_lasting_loop_reports_nothing() -> None:
    failures: list[BaseException] = []
    tasks = BackgroundTasks(on_failure=failures.append)
    tasks.spawn(asyncio.Event().wait(), lasting=True)
    await asyncio.sleep(0)
    await tasks.stop()
    assert failures == []
