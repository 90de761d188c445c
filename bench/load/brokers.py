"""The broker a load run measures: a private node with the management plugin (the
accounts suite's `ManagedNode`), the cluster suite's private 3-node `Cluster`, or a
broker someone else runs, given by its URL(s). Private ones need root, as those suites
do; they are stopped by their own PIDs when the run ends."""

from __future__ import annotations

import time
from typing import Protocol

from chat_tui.config import split_urls
from tests.accounts.node import ManagedNode
from tests.cluster.cluster import Cluster


class LoadBroker(Protocol):
    description: str

    def url_for(self, index: int) -> str:
        """The `amqp_url` of user `index` (a comma list on a cluster)."""

    def memory(self) -> int | None:
        """Bytes the broker's nodes use in all, or None when it cannot be asked."""

    def beam_pids(self) -> list[int]:
        """The broker's beam.smp processes, for their CPU (none when it is not ours)."""

    def close(self) -> None: ...


class PrivateNode:
    """One private node; its memory from the management API (`GET /api/nodes`)."""

    def __init__(self) -> None:
        self.node = ManagedNode()
        self.node.start()
        self.description = f"private node {self.node.name}"

    def url_for(self, index: int) -> str:
        return self.node.amqp_url("guest", "guest")

    def memory(self) -> int | None:
        # A node that has just started lists itself before its first statistics.
        deadline = time.monotonic() + 30
        with self.node.http() as api:
            while True:
                response = api.get("api/nodes")
                response.raise_for_status()
                nodes = response.json()
                if all("mem_used" in node for node in nodes) or time.monotonic() > deadline:
                    return sum(int(node["mem_used"]) for node in nodes)
                time.sleep(0.5)

    def beam_pids(self) -> list[int]:
        try:
            return [int(self.node.pid_file.read_text().strip())]
        except (OSError, ValueError):
            return []

    def close(self) -> None:
        self.node.destroy()


class PrivateCluster:
    """Three private nodes; each user's URL list starts at a different node, so that the
    connections, and with them the quorum leaders the clients declare, spread evenly."""

    def __init__(self) -> None:
        self.cluster = Cluster()
        self.formed_in = self.cluster.start()
        self.description = f"private 3-node cluster {', '.join(self.cluster.names())}"

    def url_for(self, index: int) -> str:
        nodes = len(self.cluster.nodes)
        return ",".join(self.cluster.url((index + k) % nodes) for k in range(nodes))

    def memory(self) -> int | None:
        # erlang:memory(total) is what the management API reports as mem_used.
        return sum(
            int(node.ctl("eval", "erlang:memory(total).").strip()) for node in self.cluster.nodes
        )

    def beam_pids(self) -> list[int]:
        return [pid for node in self.cluster.nodes if (pid := node.beam_pid()) is not None]

    def close(self) -> None:
        self.cluster.destroy()


class GivenBroker:
    """A broker that is not ours: only its URLs; its memory and CPU are not measured."""

    def __init__(self, amqp_url: str) -> None:
        self.urls = split_urls(amqp_url)
        self.description = f"the broker at {', '.join(self.urls)}"

    def url_for(self, index: int) -> str:
        return ",".join(self.urls)

    def memory(self) -> int | None:
        return None

    def beam_pids(self) -> list[int]:
        return []

    def close(self) -> None:
        return None
