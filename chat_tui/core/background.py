"""The client's background tasks: started one by one, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Tasks that run until the client stops. A task that fails is reported through
    `on_failure`, and so is a `lasting` one (a loop meant to run until `stop()`) that ends
    before, even by a CancelledError that was not ours: aiormq fails a closing
    connection's futures with it, and a loop it ended once went unnoticed for minutes
    (docs/performance.md, "the directory stall"). `stop()` returns only once every task
    has finished, including one that was still cleaning up when it was cancelled."""

    def __init__(self, on_failure: Callable[[BaseException], None]) -> None:
        self._on_failure = on_failure
        self._running: set[asyncio.Task[Any]] = set()
        self._lasting: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def spawn(
        self, coroutine: Coroutine[Any, Any, Any], *, lasting: bool = False
    ) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._running.add(task)
        if lasting:
            self._lasting.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("background task failed", exc_info=error)
            self._on_failure(error)
        elif task in self._lasting and not self._stopping:
            how = "was cancelled" if task.cancelled() else "returned"
            name = getattr(task.get_coro(), "__qualname__", task.get_name())
            ended = RuntimeError(f"{name} {how} before the client stopped")
            log.error("background loop ended: %s", ended)
            self._on_failure(ended)
        self._lasting.discard(task)

    async def stop(self) -> None:
        self._stopping = True
        # A snapshot each round: done callbacks shrink the set while we wait, and a task
        # may spawn another while it is being cancelled.
        while self._running:
            tasks = list(self._running)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._running.difference_update(tasks)
