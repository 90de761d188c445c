"""The chat users of one cluster scenario: the fault suite's `ChatWorld` (real CLI and
sender subprocesses, the same checker), each user connected straight to a node of the
cluster chosen per user, and every queue declared as a quorum queue.

Results go to this suite's own table, which adds what the fault suite's has no column
for: how long the scenario's failover took.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.cluster.cluster import Cluster
from tests.faults import checker
from tests.faults.world import ChatWorld, Run


@dataclass
class ClusterResult:
    result: checker.ScenarioResult
    failover: float | None
    """Seconds from the fault until messages flowed again (None: the scenario has none)."""


RESULTS: list[ClusterResult] = []
"""Every cluster scenario's result, for the table at the end of the session."""


@dataclass
class ClusterWorld(ChatWorld):
    """`ChatWorld` on a cluster: `homes` says which node each user's processes connect to
    (node 0 unless told). `node` is the node that `tail()` asks about consumers: keep it
    on one that runs (`ask_through`)."""

    cluster: Cluster = field(kw_only=True)
    homes: dict[str, int] = field(default_factory=dict)
    failover: bool = field(default=False, kw_only=True)
    """Give every user the whole cluster, its home node first, as a deployment would:
    the client moves to the next node when its own dies."""

    def env(self, user: str, url: str | None = None) -> dict[str, str]:
        return {**super().env(user, url or self.urls_of(user)), "CHAT_TUI_QUEUE_TYPE": "quorum"}

    def urls_of(self, user: str) -> str:
        """`amqp_url` of USER: its home node, then (failing over) the others in turn."""
        home = self.homes.get(user, 0)
        if not self.failover:
            return self.cluster.url(home)
        order = [(home + step) % len(self.cluster.nodes) for step in range(len(self.cluster.nodes))]
        return ",".join(self.cluster.url(index) for index in order)

    def place(self, users: Iterable[str], nodes: Iterable[int]) -> None:
        """Home the users on the nodes, round robin."""
        targets = list(nodes)
        for i, user in enumerate(users):
            self.homes[user] = targets[i % len(targets)]

    def ask_through(self, index: int) -> None:
        self.node = self.cluster.nodes[index]

    def inbox(self, user: str) -> str:
        return f"{self.namespace}.inbox.{user}"

    def settle_with(
        self, scenario: str, failover: float | None, timeout: float = 90.0
    ) -> checker.ScenarioResult:
        """`settle()`, with the result in this suite's table rather than the fault suite's."""
        result = self.settle(scenario, timeout)
        checker.RESULTS.remove(result)
        RESULTS.append(ClusterResult(result, failover))
        return result


def printed_ids(runs: Iterable[Run]) -> set[str]:
    """Every message ID that these runs printed (senders print each message as it is sent,
    tails as it is shown)."""
    found: set[str] = set()
    for run in runs:
        for line in run.lines():
            with contextlib.suppress(ValueError):  # a line still being written
                printed = json.loads(line)
                if isinstance(printed, dict) and "message_id" in printed:
                    found.add(str(printed["message_id"]))
    return found


def table(results: list[ClusterResult]) -> str:
    """The report: one row per scenario, the fault suite's counts and the failover time."""
    header = (
        "scenario",
        "sent",
        "expected",
        "delivered",
        "lost",
        "dup",
        "corrupt",
        "unexp",
        "failover s",
    )
    rows = [
        (
            r.result.scenario,
            str(r.result.sent),
            str(r.result.expected),
            str(r.result.delivered),
            str(len(r.result.lost)),
            str(len(r.result.duplicated)),
            str(len(r.result.corrupted)),
            str(len(r.result.unexpected)),
            "-" if r.failover is None else f"{r.failover:.1f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])
