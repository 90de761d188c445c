"""`python -m bench.load [--users 1000] [--groups 100] [--rate R --duration S |
--ramp START:STEP:STEP_SECONDS] [--broker node|cluster | --amqp-url URL[,URL...]]`.

Without `--amqp-url` it starts a private broker of its own (root needed, as for the
fault suite): never load the shared broker with a thousand users.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from bench.load.brokers import GivenBroker, LoadBroker, PrivateCluster, PrivateNode
from bench.load.plan import LoadPlan
from bench.load.run import LoadOptions, run
from chat_tui.protocol.queues import QueueType

MAX_STEPS = 100


def ramp_rates(text: str) -> tuple[list[float], float]:
    """START:STEP:STEP_SECONDS as the rates of the steps and their length."""
    try:
        start, step, seconds = (float(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--ramp wants START:STEP:STEP_SECONDS, three numbers, not {text!r}"
        ) from None
    if start <= 0 or step <= 0 or seconds <= 0:
        raise argparse.ArgumentTypeError("--ramp: every number must be above 0")
    return [start + k * step for k in range(MAX_STEPS)], seconds


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s in all")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds at --rate")
    parser.add_argument(
        "--ramp", type=ramp_rates, help="START:STEP:STEP_SECONDS, until p99 passes 1 s or loss"
    )
    parser.add_argument("--dm-share", type=float, default=0.2, help="the share of DMs")
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--amqp-url", help="a broker that is not ours (a comma list works)")
    where.add_argument("--broker", choices=("node", "cluster"), default="node")
    parser.add_argument("--queue-type", choices=("classic", "quorum"))
    parser.add_argument("--json", type=Path, help="also write the report here")
    return parser


def main() -> int:
    args = parser().parse_args()
    try:
        plan = LoadPlan(args.users, args.groups, args.workers, args.dm_share)
    except ValueError as exc:
        print(f"bench.load: {exc}", file=sys.stderr)
        return 2
    rates, seconds = args.ramp or ([args.rate], args.duration)
    queue_type: QueueType = args.queue_type or ("quorum" if args.broker == "cluster" else "classic")
    options = LoadOptions(plan, queue_type, rates, seconds, drain_timeout=args.drain_timeout)
    broker: LoadBroker
    if args.amqp_url:
        broker = GivenBroker(args.amqp_url)
    else:
        broker = PrivateCluster() if args.broker == "cluster" else PrivateNode()
    try:
        report = run(options, broker)
    finally:
        broker.close()
    print(report.summary())
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    # A ramp ends on a broken step by design; a fixed rate must hold.
    held = bool(args.ramp) or all(step.holds for step in report.steps)
    clean = report.accounting is not None and report.accounting.clean
    return 0 if held and clean else 1


if __name__ == "__main__":
    sys.exit(main())
