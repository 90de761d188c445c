"""The shared Backoff: its delays, its reset and its interruptible wait. No broker."""

from __future__ import annotations

import asyncio

import pytest

from chat_tui.backoff import Backoff


def test_delays_double_from_first_up_to_most() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_factor_sets_the_growth() -> None:
    backoff = Backoff(1.0, 100.0, factor=3.0)
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 3.0, 9.0, 27.0]


def test_current_is_the_delay_the_next_wait_takes() -> None:
    backoff = Backoff(0.5, 10.0)
    assert backoff.current == 0.5
    backoff.next_delay()
    assert backoff.current == 1.0
    assert backoff.next_delay() == 1.0


def test_reset_after_a_success_starts_from_first_again() -> None:
    backoff = Backoff(0.5, 10.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.current == 0.5
    assert backoff.next_delay() == 0.5


@pytest.mark.parametrize(
    ("first", "most", "factor"), [(0.0, 1.0, 2.0), (2.0, 1.0, 2.0), (1.0, 2.0, 0.5)]
)
def test_a_backoff_that_would_not_wait_or_would_shrink_is_refused(
    first: float, most: float, factor: float
) -> None:
    with pytest.raises(ValueError):
        Backoff(first, most, factor)


async def test_wait_without_an_interrupt_sleeps_the_delay_and_grows() -> None:
    backoff = Backoff(0.01, 1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await backoff.wait() is False
    assert loop.time() - started >= 0.01
    assert backoff.current == 0.02


async def test_wait_runs_out_when_the_interrupt_stays_clear() -> None:
    backoff = Backoff(0.01, 1.0)
    interrupt = asyncio.Event()
    assert await backoff.wait(interrupt) is False
    assert backoff.current == 0.02


async def test_an_interrupt_set_during_the_wait_ends_it_early() -> None:
    backoff = Backoff(30.0, 60.0)
    interrupt = asyncio.Event()
    asyncio.get_running_loop().call_soon(interrupt.set)
    async with asyncio.timeout(5.0):
        assert await backoff.wait(interrupt) is True
    # An interrupted wait still used its delay: the next one has grown.
    assert backoff.current == 60.0


async def test_an_interrupt_already_set_returns_at_once() -> None:
    backoff = Backoff(30.0, 60.0)
    interrupt = asyncio.Event()
    interrupt.set()
    async with asyncio.timeout(5.0):
        assert await backoff.wait(interrupt) is True


async def test_a_wait_leaves_no_task_behind() -> None:
    backoff = Backoff(0.01, 1.0)
    interrupt = asyncio.Event()
    before = asyncio.all_tasks()
    assert await backoff.wait(interrupt) is False
    asyncio.get_running_loop().call_soon(interrupt.set)
    backoff.reset()
    assert await backoff.wait(interrupt) is True
    assert asyncio.all_tasks() == before


async def test_cancelling_a_wait_cancels_it() -> None:
    backoff = Backoff(30.0, 60.0)
    waiter = asyncio.create_task(backoff.wait(asyncio.Event()))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


def test_a_stepping_backoff_walks_its_list_then_stays_on_the_last() -> None:
    backoff = Backoff.stepping(0.5, 1.0, 2.0, 5.0, 10.0)
    assert [backoff.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 5.0, 10.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.current == 0.5
    assert [backoff.next_delay() for _ in range(2)] == [0.5, 1.0]


def test_a_stepping_backoff_refuses_a_shrinking_list() -> None:
    with pytest.raises(ValueError, match="do not shrink"):
        Backoff.stepping(1.0, 0.5)
    with pytest.raises(ValueError):
        Backoff.stepping()
