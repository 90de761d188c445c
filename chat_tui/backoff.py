"""The one retry delay of the client: doubling waits, capped, reset after a success.

It sits beside config.py rather than in the core because the transport, below the
core, retries too.
"""

from __future__ import annotations

import asyncio
import itertools


class Backoff:
    """Delays that double from `first` up to `most`; reset after a success."""

    def __init__(self, first: float, most: float, factor: float = 2.0) -> None:
        if not 0 < first <= most:
            raise ValueError(f"need 0 < first <= most, got first={first} most={most}")
        if factor < 1:
            raise ValueError(f"a backoff must not shrink, got factor={factor}")
        self.first = first
        self.most = most
        self.factor = factor
        self._current = first
        self._steps: tuple[float, ...] = ()
        self._step = 0

    @classmethod
    def stepping(cls, *delays: float) -> Backoff:
        """Delays taken from a list, in order, then the last one again: for a schedule
        that no factor gives (0.5, 1, 2, 5, 10 s)."""
        if not delays or any(b < a for a, b in itertools.pairwise(delays)):
            raise ValueError(f"need delays that do not shrink, got {delays}")
        backoff = cls(delays[0], delays[-1])
        backoff._steps = delays
        return backoff

    @property
    def current(self) -> float:
        """The delay the next wait will take, for "next try in N s"."""
        return self._current

    def next_delay(self) -> float:
        """The delay to wait now; the one after it grows by `factor` (or is the next
        step), up to `most`."""
        delay = self._current
        if self._steps:
            self._step = min(self._step + 1, len(self._steps) - 1)
            self._current = self._steps[self._step]
        else:
            self._current = min(delay * self.factor, self.most)
        return delay

    def reset(self) -> None:
        """After a success: the next delay is `first` again."""
        self._current = self.first
        self._step = 0

    async def wait(self, interrupt: asyncio.Event | None = None) -> bool:
        """Sleep the next delay; return True if `interrupt` was set before it ran out."""
        delay = self.next_delay()
        if interrupt is None:
            await asyncio.sleep(delay)
            return False
        # The timeout cancels the wait in this task, so no task is left behind.
        try:
            async with asyncio.timeout(delay):
                await interrupt.wait()
        except TimeoutError:
            return False
        return True
