"""A load run, from the parent process: start the workers, take them through the set-up
phases together, run the traffic steps (one rate, or a ramp until delivery breaks),
measure each step, stop, and account for every message with the fault suite's checker.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import shutil
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.__main__ import machine
from bench.deployment import BenchDeployment
from bench.latency import percentile
from bench.load import usage
from bench.load.brokers import GivenBroker, LoadBroker
from bench.load.plan import LoadPlan
from bench.load.worker import WorkerConfig, main, shown_file
from chat_tui.config import Settings, split_urls
from chat_tui.protocol.queues import QueueType
from tests.faults import checker

P99_LIMIT = 1.0
"""Seconds: a step whose p99 from send to stored passes this has broken."""
PHASES = ("register", "create", "join", "start", "ready")


@dataclass(frozen=True)
class LoadOptions:
    plan: LoadPlan
    queue_type: QueueType
    rates: list[float]
    """The aggregate rate of each step, messages per second; a ramp goes on while it holds."""
    step_seconds: float
    drain_timeout: float = 30.0
    idle_seconds: float = 5.0
    """Before the traffic: how much CPU the connected, silent users cost."""


@dataclass
class StepResult:
    rate: float
    sent: int
    expected: int
    delivered: int
    p50: float
    p99: float
    longest: float
    deliveries_per_second: float
    cores: dict[str, float]
    broker_memory: int | None
    errors: list[str]
    schedule_lag: float
    send_p50: float

    @property
    def missing(self) -> int:
        return self.expected - self.delivered

    @property
    def holds(self) -> bool:
        return self.p99 <= P99_LIMIT and self.missing == 0 and not self.errors

    def line(self) -> str:
        cores = ", ".join(f"{k} {v:.2f}" for k, v in self.cores.items())
        memory = "-" if self.broker_memory is None else f"{self.broker_memory / 2**20:,.0f} MiB"
        return (
            f"{self.rate:g} msg/s: sent {self.sent}, deliveries {self.delivered}/{self.expected}"
            f" ({self.deliveries_per_second:,.0f}/s), p50 {self.p50 * 1000:.0f} ms, p99 "
            f"{self.p99 * 1000:.0f} ms, max {self.longest * 1000:.0f} ms, send() p50 "
            f"{self.send_p50 * 1000:.1f} ms, schedule lag {self.schedule_lag * 1000:.0f} ms, "
            f"broker memory {memory}; cores: {cores}" + ("" if self.holds else "  <- BROKEN")
        )


@dataclass
class LoadReport:
    broker: str
    plan: LoadPlan
    queue_type: QueueType
    phases: dict[str, float] = field(default_factory=dict)
    memory_empty: int | None = None
    memory_online: int | None = None
    memory_offline: int | None = None
    worker_rss: list[int] = field(default_factory=list)
    idle_cores: dict[str, float] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    accounting: checker.ScenarioResult | None = None
    problems: list[str] = field(default_factory=list)
    stalls: int = 0
    """Clients of the set-up started again because their directory did not catch up."""
    errors_logged: dict[str, int] = field(default_factory=dict)
    """What the clients logged as errors, by text, with how often (all workers)."""
    load: list[str] = field(default_factory=list)

    def per_user(self, memory: int | None) -> float | None:
        if memory is None or self.memory_empty is None:
            return None
        return (memory - self.memory_empty) / self.plan.users

    def summary(self) -> str:
        lines = [
            f"{self.plan.users} users in {self.plan.groups} groups, {self.queue_type}"
            f" queues, {self.plan.workers} workers, on {self.broker}"
        ]
        lines.append("set-up: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.phases.items()))
        online, offline = self.per_user(self.memory_online), self.per_user(self.memory_offline)
        if online is not None and offline is not None:
            lines.append(
                f"broker memory: empty {self.memory_empty / 2**20:,.0f} MiB, "  # type: ignore[operator]
                f"per user online {online / 1024:,.0f} KiB, offline (queues only) "
                f"{offline / 1024:,.0f} KiB"
            )
        users = self.plan.users / self.plan.workers
        lines.append(
            "client RSS per user: "
            + ", ".join(f"{rss / users / 2**20:.2f} MiB" for rss in self.worker_rss)
            + f" (worker RSS / {users:.0f} users)"
        )
        lines.append(
            "idle, cores: " + ", ".join(f"{k} {v:.2f}" for k, v in self.idle_cores.items())
        )
        lines += [step.line() for step in self.steps]
        if self.accounting is not None:
            lines.append(checker.table([self.accounting]))
        lines.append(f"clients started again in the set-up, their directory stalled: {self.stalls}")
        lines += [f"problem: {p}" for p in self.problems]
        lines += [f"logged {n}x: {text}" for text, n in self.errors_logged.items()]
        lines += self.load
        return "\n".join(lines)


class Workers:
    """The worker processes, each asked the same command, answering in turn."""

    def __init__(self, configs: list[WorkerConfig]) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[BaseProcess] = []
        for config in configs:
            mine, theirs = context.Pipe()
            process = context.Process(target=main, args=(config, theirs), daemon=True)
            process.start()
            self.pipes.append(mine)
            self.processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def ask(self, command: str, *args: Any) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send((command, *args))
        answers = [pipe.recv() for pipe in self.pipes]
        errors = [a["error"] for a in answers if "error" in a]
        if errors:
            raise RuntimeError("; ".join(errors))
        return answers

    def end(self) -> None:
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(options: LoadOptions, broker: LoadBroker) -> LoadReport:
    plan = options.plan
    report = LoadReport(broker.description, plan, options.queue_type, load=[machine()])
    report.memory_empty = broker.memory()  # before the data folder, which only `try` removes
    deployment = BenchDeployment(split_urls(broker.url_for(0))[0])
    say(f"namespace {deployment.namespace}, data in {deployment.data_dir}; {machine()}")
    configs = [
        WorkerConfig(
            worker,
            plan,
            deployment.namespace,
            deployment.data_dir,
            options.queue_type,
            {i: broker.url_for(i) for i in plan.indices_of(worker)},
        )
        for worker in range(plan.workers)
    ]
    workers = Workers(configs)
    try:
        for phase in PHASES:
            began = time.monotonic()
            answers = workers.ask(phase)
            report.phases[phase] = time.monotonic() - began
            say(f"  {phase}: {report.phases[phase]:.1f} s")
        report.worker_rss = [a["rss"] for a in answers]
        report.memory_online = broker.memory()
        roles = {"broker": broker.beam_pids(), "workers": workers.pids}
        before = usage.read(roles)
        time.sleep(options.idle_seconds)
        report.idle_cores = usage.cores_used(before, usage.read(roles))
        for rate in options.rates:
            step = run_step(workers, plan, rate, options, broker, roles)
            report.steps.append(step)
            say("  " + step.line())
            if not step.holds:
                break
        stopped = workers.ask("stop")
        report.stalls = sum(a["stalls"] for a in stopped)
        report.worker_rss = [a["rss"] for a in stopped]
        report.problems = [p for a in stopped for p in a["problems"]]
        for answer in stopped:
            for text, count in answer["errors_logged"].items():
                report.errors_logged[text] = report.errors_logged.get(text, 0) + count
        workers.end()
        report.memory_offline = broker.memory()
        report.accounting = account(deployment, plan)
    finally:
        for process in workers.processes:
            if process.is_alive():
                process.kill()
        report.load.append(machine())
        if isinstance(broker, GivenBroker):
            deployment.users.update(plan.user(i) for i in range(plan.users))
            asyncio.run(deployment.cleanup())
        else:  # the private broker goes with its data
            shutil.rmtree(deployment.data_dir, ignore_errors=True)
    return report


def run_step(
    workers: Workers,
    plan: LoadPlan,
    rate: float,
    options: LoadOptions,
    broker: LoadBroker,
    roles: dict[str, list[int]],
) -> StepResult:
    before = usage.read(roles)
    sent = workers.ask("traffic", rate / plan.workers, options.step_seconds)
    cores = usage.cores_used(before, usage.read(roles))
    memory = broker.memory()
    started = min(a["started"] for a in sent)
    expected = sum(a["expected"] for a in sent)
    deadline = time.monotonic() + options.drain_timeout
    while time.monotonic() < deadline:
        if sum(a["count"] for a in workers.ask("arrived", started)) >= expected:
            break
        time.sleep(0.5)
    answers = workers.ask("latencies", started)
    latencies = sorted(x for a in answers for x in a["latencies"])
    delivered = len(latencies)
    last = max(a["last_arrival"] for a in answers)
    whole = delivered >= expected and delivered > 1
    return StepResult(
        rate=rate,
        sent=sum(a["sent"] for a in sent),
        expected=expected,
        delivered=delivered,
        p50=percentile(latencies, 50) if latencies else math.inf,
        # Anything still missing after the drain is later than any limit.
        p99=percentile(latencies, 99) if whole else math.inf,
        longest=latencies[-1] if whole else math.inf,
        deliveries_per_second=delivered / (last - started) if last > started else 0.0,
        cores=cores,
        broker_memory=memory,
        errors=[e for a in sent for e in a["errors"]],
        schedule_lag=max(a["schedule_lag"] for a in sent),
        send_p50=sorted(a["send_p50"] for a in sent)[len(sent) // 2],
    )


def account(deployment: BenchDeployment, plan: LoadPlan) -> checker.ScenarioResult:
    """Every message in every sender's cache, at every recipient's cache and sink."""
    users = [plan.user(i) for i in range(plan.users)]
    caches = {
        user: Settings(
            user=user, namespace=deployment.namespace, data_dir=deployment.data_dir
        ).database_path
        for user in users
    }
    sent = [message for user in users for message in checker.outgoing_of(caches[user])]
    recipients = [
        checker.Recipient(
            user,
            checker.incoming_of(caches[user]),
            [checker.printed_by(shown_file(deployment.data_dir, user))],
        )
        for user in users
    ]
    return checker.check("load", sent, plan.members(), recipients)
