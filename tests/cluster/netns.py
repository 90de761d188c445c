"""Network namespaces of the test's own making, for the partition scenario.

One namespace per node, one for the chat clients, and one for the switch: two bridges
there, the cluster's (node to node: Erlang distribution, Raft, stream replication) and
the clients' (AMQP only), each node joined to both by a veth pair. Cutting a node's link
on the cluster bridge partitions it from its peers while its clients still reach it,
which is the case where the partition handling decides what those clients see.

No device, address or route is made in the machine's own namespace: every link is
created inside the switch namespace with its peer end in a node's or the clients'. The
addresses (10.77.x.y) exist only inside these namespaces. `destroy()` kills what still
runs inside them (everything there was started by this test) and deletes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

CLUSTER_NET = "10.77.1"
CLIENT_NET = "10.77.2"
CLIENTS_HOST = 100
"""The clients' address on the clients' bridge: CLIENT_NET.100."""


def in_netns(name: str, work: Callable[[], T]) -> T:
    """WORK() on a thread of its own that has entered network namespace NAME: the
    sockets it opens and the processes it starts live there. The thread ends with WORK
    (Python 3.11 has no os.setns, so libc's)."""
    results: list[T] = []
    errors: list[BaseException] = []

    def enter_and_work() -> None:
        try:
            with open(f"/run/netns/{name}") as handle:
                if _libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    number = ctypes.get_errno()
                    raise OSError(number, f"setns into {name}: {os.strerror(number)}")
            results.append(work())
        except BaseException as error:  # raised again in the caller's thread
            errors.append(error)

    thread = threading.Thread(target=enter_and_work, name=f"netns {name}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def ip(*args: str) -> None:
    """Run `ip ARGS`; a failure says which command and why."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


class Network:
    """The namespaces of one partition scenario. `node_ns(i)`, `clients_ns`; the node's
    addresses `cluster_address(i)` (its peers reach it there) and `client_address(i)` (its
    clients do); `cut(i)` and `heal(i)` its cluster link; `destroy()` at the end."""

    def __init__(self, size: int) -> None:
        tag = uuid.uuid4().hex[:6]
        self.prefix = f"chatpart-{tag}"
        self.size = size
        self.switch_ns = f"{self.prefix}-sw"
        self.clients_ns = f"{self.prefix}-cl"
        self.made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise

    def node_ns(self, index: int) -> str:
        return f"{self.prefix}-n{index}"

    @staticmethod
    def cluster_address(index: int) -> str:
        return f"{CLUSTER_NET}.{index + 1}"

    @staticmethod
    def client_address(index: int) -> str:
        return f"{CLIENT_NET}.{index + 1}"

    def _add_namespace(self, name: str) -> None:
        try:
            ip("netns", "add", name)
        except (RuntimeError, FileNotFoundError) as error:
            raise RuntimeError(
                f"the partition scenario needs `ip netns` (as root): {error}"
            ) from error
        self.made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def _build(self) -> None:
        self._add_namespace(self.switch_ns)
        for bridge in ("brc", "bra"):  # cluster, clients
            ip("-n", self.switch_ns, "link", "add", "name", bridge, "type", "bridge")
            ip("-n", self.switch_ns, "link", "set", "dev", bridge, "up")
        for index in range(self.size):
            self._add_namespace(self.node_ns(index))
            self._plug(self.node_ns(index), "brc", f"c{index}", self.cluster_address(index))
            self._plug(self.node_ns(index), "bra", f"a{index}", self.client_address(index))
        self._add_namespace(self.clients_ns)
        self._plug(self.clients_ns, "bra", "a", f"{CLIENT_NET}.{CLIENTS_HOST}")

    def _plug(self, namespace: str, bridge: str, port: str, address: str) -> None:
        """A veth pair: PORT on BRIDGE in the switch, its peer `eth-PORT` in NAMESPACE with
        ADDRESS/24."""
        inside = f"eth-{port}"
        switch = ("-n", self.switch_ns, "link")
        ip(*switch, "add", "name", port, "type", "veth", "peer", "name", inside)
        ip(*switch, "set", "dev", inside, "netns", namespace)
        ip(*switch, "set", "dev", port, "master", bridge, "up")
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inside)
        ip("-n", namespace, "link", "set", "dev", inside, "up")

    def cut(self, index: int) -> None:
        """Node INDEX loses its peers: its port on the cluster bridge goes down, and
        every packet between it and them is dropped (its clients still reach it)."""
        ip("-n", self.switch_ns, "link", "set", "dev", f"c{index}", "down")

    def heal(self, index: int) -> None:
        ip("-n", self.switch_ns, "link", "set", "dev", f"c{index}", "up")

    def pids(self, namespace: str) -> list[int]:
        result = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
        return [int(pid) for pid in result.stdout.split()]

    def destroy(self) -> None:
        """Kill whatever still runs in our namespaces (epmd, a node that outlived its
        stop), then delete them; the veths and bridges go with them."""
        for namespace in self.made:
            for pid in self.pids(namespace):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(self.pids(n) for n in self.made) and time.monotonic() < deadline:
            time.sleep(0.1)
        for namespace in reversed(self.made):
            with contextlib.suppress(RuntimeError):
                ip("netns", "delete", namespace)
        self.made.clear()

    def leftovers(self) -> list[str]:
        """Namespaces of ours that still exist (none after `destroy()`)."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return [line.split()[0] for line in listed.splitlines() if line.startswith(self.prefix)]
