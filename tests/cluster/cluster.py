"""A private 3-node RabbitMQ cluster for the cluster scenarios: three of the fault suite's
`BrokerNode`s (the system's rabbitmq-server as user rabbitmq, each its own session, ports,
data and config, stopped by its own PID) that share one Erlang cookie and form a cluster
through classic-config peer discovery.

All of the cluster's traffic stays on the loopback: the node names are on `localhost`
(this machine's name resolves to 127.0.0.1 too), and distribution and AMQP listen on
127.0.0.1 only. One listener cannot be held there: the stream replication listener of
RabbitMQ 3.10's osiris calls gen_tcp:listen without an address, and the kernel's
`inet_default_listen_options` cannot add one (with `{ip, ...}` every listen fails with
einval, the node's own dist port check among them). So each cluster gets a port range of
its own for it; each such listener lives only until its replica reader, which dials the
node's host name, that is the loopback, has connected. Nothing here touches the shared
broker on 5672 or any node it did not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import random
import secrets
import shutil
import socket
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.faults.broker_node import RABBITMQ_USER, START_TIMEOUT, BrokerNode

SIZE = 3
STREAM_PORTS = 60
"""Ports in each cluster's own osiris range: one listener per stream replica while it
connects, so a few dozen cover every directory stream the scenarios declare."""


def distinct_free_ports(count: int) -> list[int]:
    """COUNT ports free on 127.0.0.1, all different (each probe stays bound until the end)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def free_port_range(count: int) -> tuple[int, int]:
    """A run of COUNT ports, all free now, below the kernel's ephemeral range."""
    for _ in range(50):
        first = random.randrange(20000, 30000 - count)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first, first + count):
                    probe = stack.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return first, first + count
    raise RuntimeError(f"no {count} free consecutive ports between 20000 and 30000")


def alive(pid: int) -> bool:
    """PID runs (a zombie, killed and waiting for its parent to reap it, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class ClusterNode(BrokerNode):
    """One member: a `BrokerNode` whose config names its peers and whose HOME holds the
    cluster's shared cookie."""

    def __init__(
        self, name: str, peers: list[str], home: Path, ports: tuple[int, int], streams: str
    ) -> None:
        # _prepare() runs inside BrokerNode.__init__ and needs these.
        self.peers = peers
        self.home = home
        self.ports = ports
        self.stream_range = streams
        super().__init__()
        self.name = name

    def _prepare(self) -> None:
        # Chosen together by the cluster, so that no two nodes can draw the same port.
        self.port, self.dist_port = self.ports
        super()._prepare()
        peers = "".join(
            f"cluster_formation.classic_config.nodes.{i} = {peer}\n"
            for i, peer in enumerate(self.peers, start=1)
        )
        # Rewritten in place, so the owner and mode BrokerNode gave it stay. `guest` stays
        # loopback-only, as on any fresh node: the clients come over 127.0.0.1.
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "disk_free_limit.absolute = 10MB\n"
            "cluster_formation.peer_discovery_backend = classic_config\n" + peers
        )

    def _env(self) -> dict[str, str]:
        env = super()._env()
        loopback = env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
        return {
            **env,
            "HOME": str(self.home),  # the cluster's one cookie
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                f"{loopback} -osiris port_range {self.stream_range}"
            ),
            # rabbitmqctl is a distributed Erlang node too: loopback for it as well.
            "RABBITMQ_CTL_ERL_ARGS": loopback,
        }

    def beam_pid(self) -> int | None:
        """The node's beam.smp, as it wrote it to its PID file."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None


class Cluster:
    """Three private nodes in one cluster. `start()` all of them, `kill(i)` (-9),
    `stop_node(i)` (clean), `start_node(i)` again on the same data, `destroy()` at the end;
    `url(i)` to connect a client to node i, `leader_of(queue)` for a quorum queue's
    leader, `index_of(node_name)` for a node's position."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.base = Path(tempfile.mkdtemp(prefix="chatclu-"))
        self.home = self.base / "home"
        self._write_cookie()
        self.nodes = self._members(tag)

    def _members(self, tag: str) -> list[ClusterNode]:
        """The nodes, not started (a cluster in network namespaces makes its own)."""
        names = [f"chatclu-{tag}-{i}@localhost" for i in range(SIZE)]
        ports = distinct_free_ports(2 * SIZE)
        first, last = free_port_range(STREAM_PORTS)
        return [
            ClusterNode(
                name, names, self.home, (ports[2 * i], ports[2 * i + 1]), f"{{{first},{last}}}"
            )
            for i, name in enumerate(names)
        ]

    def _write_cookie(self) -> None:
        owner = pwd.getpwnam(RABBITMQ_USER)
        self.home.mkdir()
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20).upper())
        for path in (self.base, self.home, cookie):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.base.chmod(0o755)
        self.home.chmod(0o700)
        cookie.chmod(0o400)  # Erlang refuses a cookie that others can read

    def url(self, index: int) -> str:
        return self.nodes[index].url

    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def index_of(self, node_name: str) -> int:
        return self.names().index(node_name)

    def start(self, timeout: float = START_TIMEOUT) -> float:
        """Start all three at once (each waits for its peers); return the seconds until
        every node reports all three running."""
        began = time.monotonic()
        with ThreadPoolExecutor(SIZE) as pool:
            for started in [pool.submit(node.start, timeout) for node in self.nodes]:
                started.result()
        self.wait_running(began + timeout)
        return time.monotonic() - began

    def kill(self, index: int) -> None:
        """kill -9 node INDEX (its own process group only)."""
        self.nodes[index].kill()

    def stop_node(self, index: int) -> None:
        """A clean shutdown of node INDEX, as a rolling restart does it."""
        self.nodes[index].stop()

    def start_node(self, index: int, timeout: float = START_TIMEOUT) -> float:
        """Start node INDEX again on its data; return the seconds until the cluster shows
        all three running again."""
        began = time.monotonic()
        self.nodes[index].start(timeout)
        self.wait_running(began + timeout)
        return time.monotonic() - began

    def running_node(self) -> ClusterNode:
        for node in self.nodes:
            if node.running:
                return node
        raise RuntimeError("no node of the cluster is running")

    def running_names(self) -> set[str]:
        """The nodes the cluster itself counts as running, asked of one that runs."""
        status: dict[str, Any] = json.loads(
            self.running_node().ctl("cluster_status", "--formatter", "json")
        )
        return set(status.get("running_nodes", []))

    def wait_running(self, deadline: float) -> None:
        expected = {node.name for node in self.nodes if node.running}
        while True:
            with contextlib.suppress(RuntimeError, ValueError):
                if self.running_names() >= expected:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not show {sorted(expected)} running")
            time.sleep(0.5)

    def leader_of(self, queue: str, timeout: float = 30.0) -> int:
        """The index of the node that leads quorum queue QUEUE (in the default vhost).
        Just after its leader's node died, `list_queues` can leave the queue out until
        the others have elected a new leader: asked again until then."""
        deadline = time.monotonic() + timeout
        while True:
            rows: list[dict[str, Any]] = json.loads(
                self.running_node().ctl(
                    "list_queues", "--formatter", "json", "name", "type", "leader"
                )
            )
            for row in rows:
                if row.get("name") == queue:
                    if row.get("type") != "quorum":
                        raise RuntimeError(f"{queue} is a {row.get('type')} queue, not quorum")
                    return self.index_of(str(row["leader"]))
            if time.monotonic() > deadline:
                raise RuntimeError(f"no queue {queue} on the cluster")
            time.sleep(0.5)

    def destroy(self) -> None:
        """kill -9 every node (the data goes too, so a clean stop buys nothing) and remove
        all of it."""
        beams = [node.beam_pid() for node in self.nodes if node.running]
        for node in self.nodes:
            node.kill()
        # The killed group's beam.smp may outlive its shell script by a moment.
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in beams if pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        for node in self.nodes:
            shutil.rmtree(node.base, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)
