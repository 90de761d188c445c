"""Where the machine's time goes during a step, from /proc: the CPU of given processes
(the broker's beam.smp, the workers) and the whole machine's split into user, system,
I/O wait and idle. Linux only, as the rest of the benchmark."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, its threads included (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_ticks() -> dict[str, int]:
    """The machine's CPU time so far, in ticks: user, system, iowait, idle."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq = fields[:7]
    return {
        "user": user + nice,
        "system": system + irq + softirq,
        "iowait": iowait,
        "idle": idle,
    }


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True)
class Reading:
    at: float
    processes: dict[str, float]
    """CPU seconds per role (each the sum over its PIDs)."""
    machine: dict[str, int]


def read(roles: Mapping[str, Iterable[int]]) -> Reading:
    return Reading(
        time.monotonic(),
        {role: sum(process_cpu_seconds(pid) for pid in pids) for role, pids in roles.items()},
        machine_ticks(),
    )


def cores_used(before: Reading, after: Reading) -> dict[str, float]:
    """Per role, and per part of the machine: cores busy on average between two readings
    (1.0 is one core all the time; this machine has two)."""
    seconds = after.at - before.at
    if seconds <= 0:
        return {}
    used = {
        role: (after.processes[role] - before.processes[role]) / seconds for role in after.processes
    }
    for part, ticks in after.machine.items():
        used[f"machine {part}"] = (ticks - before.machine[part]) / TICKS / seconds
    return used
