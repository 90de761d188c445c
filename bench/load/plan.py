"""Who the simulated users are: their names, their groups of about ten, the partner each
one sends direct messages to, and which worker process runs them. Pure data, the same in
the parent and in every worker."""

from __future__ import annotations

import random
from dataclasses import dataclass

from chat_tui.protocol.conversations import Conversation


@dataclass(frozen=True)
class LoadPlan:
    users: int
    groups: int
    workers: int
    dm_share: float
    """The share of messages that are direct messages; the rest go to the sender's group."""

    def __post_init__(self) -> None:
        if not 1 <= self.groups <= self.users // 2:
            raise ValueError(f"{self.groups} groups need at least {2 * self.groups} users")
        if not 1 <= self.workers <= self.users:
            raise ValueError(f"{self.workers} workers for {self.users} users")
        if not 0.0 <= self.dm_share <= 1.0:
            raise ValueError(f"the DM share must be between 0 and 1, not {self.dm_share}")

    def user(self, index: int) -> str:
        return f"u{index:05d}"

    def group_of(self, index: int) -> str:
        # Contiguous blocks, while workers take users round robin: every group spans
        # several processes, so deliveries cross them (one shared monotonic clock).
        return f"g{index * self.groups // self.users:04d}"

    def members(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for index in range(self.users):
            groups.setdefault(self.group_of(index), []).append(self.user(index))
        return groups

    def dm_partner(self, index: int) -> str:
        """Half the users away: in another group, usually in another process."""
        return self.user((index + self.users // 2) % self.users)

    def indices_of(self, worker: int) -> list[int]:
        return list(range(worker, self.users, self.workers))

    def pick(self, index: int, chance: random.Random) -> Conversation:
        """Where user `index`'s next message goes."""
        if chance.random() < self.dm_share:
            return Conversation.dm(self.dm_partner(index))
        return Conversation.group(self.group_of(index))
