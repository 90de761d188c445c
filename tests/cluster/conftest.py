"""Fixtures of the cluster suite: one private 3-node cluster for the session (always
destroyed at the end), and a `ClusterWorld` per scenario on a cluster whose three nodes
all run. Everything here is marked `faults` and `broker`, as the fault suite is: `make
test-fast` leaves it out, `make test-faults` runs it. At the end of the session the table
of the scenarios is printed, with the failover time of each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import world as cluster_world
from tests.cluster.cluster import Cluster
from tests.cluster.world import ClusterWorld
from tests.faults.fault_proxy import FaultProxy

HERE = Path(__file__).resolve().parent
FORMATION: list[float] = []
"""Seconds the session's cluster took to form, for the summary."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """Three private nodes of the system's rabbitmq-server, never the shared one on 5672."""
    nodes = Cluster()
    try:
        FORMATION.append(nodes.start())
        yield nodes
    finally:
        nodes.destroy()


@pytest.fixture
def world(cluster: Cluster, tmp_path: Path) -> Iterator[ClusterWorld]:
    for index, node in enumerate(cluster.nodes):
        if not node.running:  # a scenario before this one left it down
            cluster.start_node(index)
    # ChatWorld wants a proxy; every user here connects straight to a node instead.
    proxy = FaultProxy(cluster.nodes[0].port)
    proxy.start()
    chat = ClusterWorld(cluster.nodes[0], proxy, tmp_path, cluster=cluster)
    yield chat
    chat.stop_all()
    proxy.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FORMATION and not cluster_world.RESULTS:
        return
    terminalreporter.section("message accounting (cluster scenarios)")
    if FORMATION:
        terminalreporter.write_line(f"the 3-node cluster formed in {FORMATION[0]:.1f} s")
    if cluster_world.RESULTS:
        terminalreporter.write_line(cluster_world.table(cluster_world.RESULTS))
    for entry in cluster_world.RESULTS:
        if not entry.result.clean or entry.result.notes:
            terminalreporter.write_line(entry.result.details())
