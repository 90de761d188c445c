"""`python -m bench --quick|--full [--only NAME ...]`: run, print the table, write JSON."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.deployment import BenchDeployment
from bench.report import Result, table, write_json
from bench.sizes import FULL, QUICK, Sizes

Metric = Callable[[BenchDeployment, Sizes], Awaitable[list[Result]]]
METRICS = ("latency", "ingest", "drain", "fanout", "conversation_open", "cold_start")
"""Modules of this package, each with `async def measure(deployment, sizes)`."""
HERE = Path(__file__).resolve().parent


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, load {load}"
    )


async def run(names: list[str], sizes: Sizes) -> list[Result]:
    results: list[Result] = []
    for name in names:
        measure: Metric = importlib.import_module(f"bench.{name}").measure
        deployment = BenchDeployment()
        started = time.monotonic()
        print(f"-- {name} (namespace {deployment.namespace})", file=sys.stderr, flush=True)
        try:
            results += await measure(deployment, sizes)
        finally:
            await deployment.cleanup()
        print(f"   {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    size.add_argument("--full", action="store_true", help="full sizes; writes bench/results.json")
    parser.add_argument("--only", nargs="+", choices=METRICS, help="run only these metrics")
    parser.add_argument("--output", type=Path, help="where to write the JSON results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    sizes = FULL if args.full else QUICK
    output = args.output or HERE / ("results.json" if args.full else "results-quick.json")
    print(machine(), file=sys.stderr)
    started = time.monotonic()
    results = asyncio.run(run(list(args.only or METRICS), sizes))
    print(table(results))
    print(f"\n{time.monotonic() - started:.0f} s in all; {machine()}")
    write_json(results, output)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
