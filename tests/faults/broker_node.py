"""A private RabbitMQ node for fault tests: the system's rabbitmq-server, on its own ports,
data and logs, so that it can be killed and restarted without touching the shared broker.

The node runs as the `rabbitmq` user (we may be root; Erlang and the Mnesia files want
their owner), in its own session, so a kill -9 of that process group takes exactly this
node's beam.smp and its helpers, and nothing else. epmd is shared and left alone.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = str(Path(RABBITMQ_SERVER).with_name("rabbitmqctl"))
RABBITMQ_USER = "rabbitmq"
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def amqp_answers(port: int, timeout: float = 1.0) -> bool:
    """True when the port speaks AMQP: it answers the protocol header with connection.start."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"AMQP\x00\x00\x09\x01")
            conn.settimeout(timeout)
            frame = conn.recv(7)
            return len(frame) == 7 and frame[0] == 1  # a METHOD frame
    except OSError:
        return False


class BrokerNode:
    """One private node. `start()`, `kill()` (-9), `stop()` (clean), `start()` again on the
    same data, and `destroy()` at the end."""

    def __init__(self) -> None:
        self.name = f"chatfault-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="chatfault-"))
        self.pid_file = self.base / "node.pid"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._prepare()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _prepare(self) -> None:
        for folder in ("mnesia", "log", "home"):
            (self.base / folder).mkdir()
        (self.base / "enabled_plugins").write_text("[].\n")
        # Our own config files: the system's rabbitmq.conf listens on 5672 and its
        # rabbitmq-env.conf names the shared node.
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            # Let a slow 2-core machine under load keep the node up.
            "disk_free_limit.absolute = 10MB\n"
        )
        (self.base / "rabbitmq-env.conf").write_text("")
        owner = pwd.getpwnam(RABBITMQ_USER)
        for path in [self.base, *self.base.rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.base.chmod(0o755)

    def _env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM")}
        return {
            **keep,
            "HOME": str(self.base / "home"),  # a private Erlang cookie
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self, timeout: float = START_TIMEOUT) -> float:
        """Start (or restart on the same data); return the seconds it took to answer."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.name} is already running")
        if amqp_answers(self.port, 0.5):
            raise RuntimeError(f"something else answers on port {self.port}")
        began = time.monotonic()
        owner = pwd.getpwnam(RABBITMQ_USER)
        log = open(self.base / "log" / f"console-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [RABBITMQ_SERVER],
            env=self._env(),
            cwd=self.base,
            user=owner.pw_uid,
            group=owner.pw_gid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.starts += 1
        while time.monotonic() - began < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up; see {self.base / 'log'}")
            if amqp_answers(self.port):
                return time.monotonic() - began
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"{self.name} did not answer within {timeout} s; see {self.base}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9 this node: its own process group (the script, beam.smp, its ports)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self._wait_port_closed()

    def stop(self, timeout: float = 60.0) -> None:
        """A clean shutdown: SIGTERM to the node's beam.smp (it stops RabbitMQ properly)."""
        if not self.running:
            return
        assert self.process is not None
        try:
            beam_pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            beam_pid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(beam_pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        # The shell wrapper is gone; make sure nothing of the group lingers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._wait_port_closed()

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run `rabbitmqctl ARGS` against this node, as its owner, with its environment;
        what it printed."""
        owner = pwd.getpwnam(RABBITMQ_USER)
        result = subprocess.run(
            [RABBITMQCTL, "-n", self.name, *args],
            env=self._env(),
            cwd=self.base,
            user=owner.pw_uid,
            group=owner.pw_gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"rabbitmqctl {' '.join(args)} on {self.name} failed: {result.stderr.strip()}"
            )
        return result.stdout

    def _wait_port_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and amqp_answers(self.port, 0.2):
            time.sleep(0.1)

    def destroy(self) -> None:
        self.stop()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def running_node() -> Iterator[BrokerNode]:
    """A private node, started, and destroyed afterwards whatever happened to it."""
    broker = BrokerNode()
    try:
        broker.start()
        yield broker
    finally:
        broker.destroy()
