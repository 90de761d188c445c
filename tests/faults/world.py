"""The chat users of one fault scenario: real CLI and sender subprocesses against the
private node, through the fault proxy, with one data folder and one fresh namespace.

Every process's output goes to a file in the scenario's folder, so a failing scenario
can be read afterwards, and the checker reads what each `tail --json` run printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import aio_pika.exceptions

from tests.faults import checker
from tests.faults.broker_node import BrokerNode
from tests.faults.fault_proxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]
SENDER = Path(__file__).resolve().parent / "sender.py"

# Short settings, so that faults are noticed and healed within seconds.
CLIENT_SETTINGS = {
    "CHAT_TUI_HEARTBEAT": "2",
    "CHAT_TUI_RECONNECT_INTERVAL": "0.5",
    "CHAT_TUI_CONFIRM_TIMEOUT": "3",
}


@dataclass(frozen=True)
class QueueState:
    messages: int
    consumers: int


def queue_state(port: int, name: str) -> QueueState:
    """Ready messages and consumers of a queue, asked of the node directly (not the proxy)."""

    async def ask() -> QueueState:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/", timeout=10)
        async with connection:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                return QueueState(0, 0)
            result = queue.declaration_result
            return QueueState(result.message_count or 0, result.consumer_count or 0)

    return asyncio.run(ask())


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Run:
    """One subprocess of one user, with its output files."""

    user: str
    role: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """kill -9."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C, the way a user ends `tail`."""
        if self.alive:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def lines(self) -> list[str]:
        return self.stdout.read_text(errors="replace").splitlines() if self.stdout.exists() else []

    def errors(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""


@dataclass
class ChatWorld:
    node: BrokerNode
    proxy: FaultProxy
    folder: Path
    namespace: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:8]}")
    members: dict[str, list[str]] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    extra_sent: list[checker.Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir = self.folder / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def env(self, user: str, url: str | None = None) -> dict[str, str]:
        """The environment of USER's processes; URL bypasses the proxy (or uses another)."""
        return {
            **os.environ,
            **CLIENT_SETTINGS,
            "CHAT_TUI_USER": user,
            "CHAT_TUI_AMQP_URL": url or self.proxy.url(),
            "CHAT_TUI_NAMESPACE": self.namespace,
            "CHAT_TUI_DATA_DIR": str(self.data_dir),
            "CHAT_TUI_CONFIG_FILE": str(self.folder / "no-config.toml"),
            "PYTHONUNBUFFERED": "1",
        }

    def database(self, user: str) -> Path:
        return self.data_dir / f"{self.namespace}-{user}.sqlite3"

    # --- processes -------------------------------------------------------------------

    def spawn(self, user: str, role: str, argv: list[str], url: str | None = None) -> Run:
        number = sum(1 for r in self.runs if r.user == user and r.role == role)
        stdout = self.folder / f"{user}-{role}-{number}.out"
        stderr = self.folder / f"{user}-{role}-{number}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, *argv], env=self.env(user, url), cwd=ROOT, stdout=out, stderr=err
            )
        run = Run(user, role, process, stdout, stderr)
        self.runs.append(run)
        return run

    def cli(
        self, user: str, *args: str, timeout: float = 60, url: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `chat-tui ARGS` as USER and wait for it."""
        return subprocess.run(
            [sys.executable, "-m", "chat_tui", *args],
            env=self.env(user, url),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_cli(self, user: str, role: str, *args: str, url: str | None = None) -> Run:
        return self.spawn(user, role, ["-m", "chat_tui", *args], url)

    def tail(self, user: str) -> Run:
        """`chat-tui tail --json -v` as USER; wait until it consumes."""
        inbox = f"{self.namespace}.inbox.{user}"
        before = queue_state(self.node.port, inbox).consumers
        run = self.start_cli(user, "tail", "tail", "--json", "-v")
        wait_for(
            lambda: not run.alive or queue_state(self.node.port, inbox).consumers > before,
            30,
            f"{user}'s tail to consume",
            0.3,
        )
        assert run.alive, f"{user}'s tail exited: {run.errors()[-2000:]}"
        return run

    def sender(
        self,
        user: str,
        *,
        group: list[str] | None = None,
        dm: list[str] | None = None,
        count: int = 0,
        interval: float = 0.05,
        tag: str = "m",
        url: str | None = None,
    ) -> Run:
        argv = [str(SENDER), "--count", str(count), "--interval", str(interval), "--tag", tag]
        for g in group or []:
            argv += ["--group", g]
        for u in dm or []:
            argv += ["--dm", u]
        return self.spawn(user, "sender", argv, url)

    # --- set-up ----------------------------------------------------------------------

    def make_group(self, group: str, users: list[str]) -> None:
        """Register USERS and put them all in GROUP, through the CLI."""
        created = self.cli(users[0], "create", group)
        assert created.returncode == 0, created.stderr
        joins = [self.start_cli(u, "join", "join", group) for u in users[1:]]
        for run in joins:
            assert run.process.wait(60) == 0, run.errors()
        self.members[group] = list(users)

    # --- the end ---------------------------------------------------------------------

    def sent(self) -> list[checker.Sent]:
        users = {r.user for r in self.runs}
        sent = [m for u in sorted(users) for m in checker.outgoing_of(self.database(u))]
        return sent + self.extra_sent

    def recipients(self) -> list[checker.Recipient]:
        users = sorted({u for group in self.members.values() for u in group} | self._dm_targets())
        return [
            checker.Recipient(
                user,
                checker.incoming_of(self.database(user)),
                [checker.printed_by(r.stdout) for r in self._tails_of(user)],
                [r.process.returncode == -signal.SIGKILL for r in self._tails_of(user)],
            )
            for user in users
        ]

    def _tails_of(self, user: str) -> list[Run]:
        return [r for r in self.runs if r.user == user and r.role == "tail"]

    def _dm_targets(self) -> set[str]:
        return {
            m.conversation.split(":", 1)[1] for m in self.sent() if m.conversation.startswith("dm:")
        }

    def check(self, scenario: str) -> checker.ScenarioResult:
        return checker.check(scenario, self.sent(), self.members, self.recipients())

    def all_delivered(self) -> bool:
        """Every sent message is stored and printed at every recipient."""
        result = self.check("progress")
        return not result.lost

    def settle(self, scenario: str, timeout: float = 90.0) -> checker.ScenarioResult:
        """Wait for delivery, stop the tails with Ctrl-C, and account for everything."""
        with contextlib.suppress(AssertionError):
            wait_for(self.all_delivered, timeout, "every message at every recipient", 0.5)
        for run in self.runs:
            if run.role == "tail":
                run.interrupt()
        result = self.check(scenario)
        checker.RESULTS.append(result)
        return result

    def stop_all(self) -> None:
        for run in self.runs:
            if run.alive:
                run.kill()

    def describe(self) -> str:
        """The stderr of every process, for a failure message."""
        parts = []
        for run in self.runs:
            text = run.errors().strip()
            if text:
                parts.append(
                    f"--- {run.stderr.name} (exit {run.process.returncode})\n{text[-1500:]}"
                )
        return "\n".join(parts)


USERS = ["ann", "bob", "cyd", "dan", "eve"]
GROUP = "room"


def start_traffic(
    world: ChatWorld,
    users: list[str],
    count: int,
    interval: float,
    tag: str = "m",
    url: str | None = None,
) -> list[Run]:
    """Every user sends COUNT messages, alternating the group and a DM to the next user."""
    return [
        world.sender(
            user,
            group=[GROUP],
            dm=[users[(i + 1) % len(users)]],
            count=count,
            interval=interval,
            tag=tag,
            url=url,
        )
        for i, user in enumerate(users)
    ]


def wait_sending(senders: list[Run], at_least: int = 3, timeout: float = 60.0) -> None:
    """Each sender is online and has sent AT_LEAST messages: the traffic is under way."""

    def under_way(run: Run) -> bool:
        lines = run.lines()
        return (
            '{"state": "online"}' in lines and sum('"message_id"' in x for x in lines) >= at_least
        )

    for run in senders:
        wait_for(lambda run=run: under_way(run), timeout, f"{run.user} to be sending")  # type: ignore[misc]


def wait_drained(world: ChatWorld, senders: list[Run], timeout: float = 90.0) -> None:
    """Each sender printed `drained` (its outbox is empty) and exited 0."""
    for run in senders:
        try:
            wait_for(
                lambda run=run: not run.alive,  # type: ignore[misc]
                timeout,
                f"{run.user}'s sender to drain its outbox",
                0.3,
            )
        except AssertionError:
            run.process.send_signal(signal.SIGUSR1)  # the sender dumps its tasks' stacks
            time.sleep(1.0)
            raise AssertionError(
                f"{run.user}'s sender did not finish:\n{run.errors()[-5000:]}"
            ) from None
        assert run.process.returncode == 0, f"{run.user}'s sender failed:\n{run.errors()[-3000:]}"
        assert '{"drained": true}' in run.lines(), run.errors()[-3000:]
    for user in {run.user for run in senders}:
        assert checker.outbox_size_of(world.database(user)) == 0, f"{user}'s outbox kept messages"
