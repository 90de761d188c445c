"""The cluster of the partition scenario: the same three private nodes as `cluster.py`,
each in a network namespace of its own (see `netns.py`), and chat users that reach them
from a namespace of their own.

What differs from the loopback cluster:
- the node names are `rabbit@n0` .. `rabbit@n2`, resolved inside Erlang by an ERL_INETRC
  file to the nodes' cluster addresses (no system file is touched); each namespace has
  its own epmd, which the node starts listening there;
- distribution listens on the cluster address, AMQP on the node's loopback (for the
  test's own checks) and its clients' address, where guest may log in (only the clients'
  namespace can get there);
- `cluster_partition_handling = pause_minority` (see docs/architecture.md, "Decisions"),
  and a short `net_ticktime`, so a node that lost its peers finds out within seconds
  rather than the default 45 to 75;
- starting, stopping, killing and rabbitmqctl run inside the node's namespace.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tests.cluster.cluster import (
    SIZE,
    STREAM_PORTS,
    Cluster,
    ClusterNode,
    distinct_free_ports,
    free_port_range,
)
from tests.cluster.netns import Network, in_netns
from tests.cluster.world import ClusterWorld
from tests.faults.broker_node import START_TIMEOUT, amqp_answers
from tests.faults.world import Run

NET_TICKTIME = 6
"""Seconds: a node that hears nothing from a peer for 4.5 to 7.5 s counts it as gone."""
LOOPBACK = "{127,0,0,1}"


def erlang_address(address: str) -> str:
    return "{" + address.replace(".", ",") + "}"


class NamespacedNode(ClusterNode):
    """A `ClusterNode` in network namespace `netns`, known to its peers by its cluster
    address and to its clients by its client address."""

    def __init__(
        self,
        index: int,
        network: Network,
        inetrc: Path,
        member: tuple[str, list[str], Path, tuple[int, int], str],
    ) -> None:
        """MEMBER: what a `ClusterNode` takes (name, peers, home, ports, stream ports)."""
        # _prepare() runs inside BrokerNode.__init__ and needs these.
        self.index = index
        self.netns = network.node_ns(index)
        self.inetrc = inetrc
        super().__init__(*member)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{Network.client_address(self.index)}:{self.port}/"

    def _prepare(self) -> None:
        super()._prepare()
        with (self.base / "rabbitmq.conf").open("a") as conf:
            conf.write(
                f"listeners.tcp.clients = {Network.client_address(self.index)}:{self.port}\n"
                # The clients come from their own namespace, not over the loopback.
                "loopback_users = none\n"
                "cluster_partition_handling = pause_minority\n"
            )

    def _env(self) -> dict[str, str]:
        env = super()._env()
        cluster_address = Network.cluster_address(self.index)
        ticktime = f" -kernel net_ticktime {NET_TICKTIME}"

        # The node's peers reach it, and rabbitmqctl, on the cluster address: a command
        # such as list_queues has every node send its rows straight to the ctl node.
        # And rabbitmqctl must tick as often as the node expects, or it is dropped.
        def on_cluster_address(variable: str) -> str:
            return env[variable].replace(LOOPBACK, erlang_address(cluster_address)) + ticktime

        return {
            **env,
            "ERL_INETRC": str(self.inetrc),
            "ERL_EPMD_ADDRESS": f"127.0.0.1,{cluster_address}",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": on_cluster_address(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"
            ),
            "RABBITMQ_CTL_ERL_ARGS": on_cluster_address("RABBITMQ_CTL_ERL_ARGS"),
        }

    def start(self, timeout: float = START_TIMEOUT) -> float:
        return in_netns(self.netns, partial(super().start, timeout))

    def stop(self, timeout: float = 60.0) -> None:
        in_netns(self.netns, partial(super().stop, timeout))

    def kill(self) -> None:
        in_netns(self.netns, super().kill)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        return in_netns(self.netns, partial(super().ctl, *args, timeout=timeout))

    def answers(self) -> bool:
        """Whether AMQP answers on the node (a paused node closes its listeners)."""
        return in_netns(self.netns, partial(amqp_answers, self.port))

    def status(self) -> dict[str, Any]:
        """`rabbitmqctl cluster_status` as this node sees it."""
        status: dict[str, Any] = json.loads(self.ctl("cluster_status", "--formatter", "json"))
        return status


class PartitionCluster(Cluster):
    """`Cluster` on NETWORK's namespaces; `network.cut(i)` partitions node i."""

    def __init__(self, network: Network) -> None:
        self.network = network  # _members() runs inside Cluster.__init__
        super().__init__()

    def _members(self, tag: str) -> list[ClusterNode]:
        names = [f"rabbit@n{i}" for i in range(SIZE)]
        inetrc = self.base / "inetrc"
        inetrc.write_text(
            "".join(
                f'{{host, {erlang_address(Network.cluster_address(i))}, ["n{i}"]}}.\n'
                for i in range(SIZE)
            )
            + "{lookup, [file, native]}.\n"
        )
        inetrc.chmod(0o644)
        ports = distinct_free_ports(2 * SIZE)
        first, last = free_port_range(STREAM_PORTS)
        return [
            NamespacedNode(
                i,
                self.network,
                inetrc,
                (name, names, self.home, (ports[2 * i], ports[2 * i + 1]), f"{{{first},{last}}}"),
            )
            for i, name in enumerate(names)
        ]

    def member(self, index: int) -> NamespacedNode:
        node = self.nodes[index]
        assert isinstance(node, NamespacedNode)
        return node

    def whole(self) -> bool:
        """Every node sees all three running and no partition."""
        for index in range(SIZE):
            try:
                status = self.member(index).status()
            except (RuntimeError, ValueError):
                return False
            if set(status.get("running_nodes", [])) != set(self.names()):
                return False
            if status.get("partitions"):
                return False
        return True

    def seen_running_by(self, index: int) -> set[str]:
        """The nodes that node INDEX counts as running (empty while it cannot say)."""
        with contextlib.suppress(RuntimeError, ValueError):
            return set(self.member(index).status().get("running_nodes", []))
        return set()


@dataclass
class PartitionWorld(ClusterWorld):
    """`ClusterWorld` whose users' processes run in the clients' namespace; `tail()` asks
    about consumers inside the namespace of the node it asks through."""

    network: Network = field(kw_only=True)

    def spawn(self, user: str, role: str, argv: list[str], url: str | None = None) -> Run:
        return in_netns(self.network.clients_ns, partial(super().spawn, user, role, argv, url))

    def cli(
        self, user: str, *args: str, timeout: float = 60, url: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        work = partial(super().cli, user, *args, timeout=timeout, url=url)
        return in_netns(self.network.clients_ns, work)

    def tail(self, user: str) -> Run:
        assert isinstance(self.node, NamespacedNode)
        return in_netns(self.node.netns, partial(super().tail, user))
