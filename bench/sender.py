"""The steady sender: plain aio-pika publishing valid group messages with confirms.

Ingest and fan-out run it in a subprocess (`python -m bench.sender ...`), so that the
sender does not share the event loop or the GIL with the consumers being measured.
It prints `ready`, waits for a line on stdin, publishes, and prints `done SECONDS`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractExchange

from bench.bodies import group_bodies
from chat_tui.protocol.models import APP_ID, CONTENT_TYPE, SEND_MESSAGE
from chat_tui.protocol.names import Names, group_key

WINDOW = 200
"""Publishes awaiting their confirm at once."""


def persistent(body: bytes) -> aio_pika.Message:
    """The same AMQP properties as chat-tui's transport puts on a chat message."""
    return aio_pika.Message(
        body,
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        type=SEND_MESSAGE,
        timestamp=datetime.now(UTC),
        app_id=APP_ID,
    )


async def publish_all(
    exchange: AbstractExchange, routing_key: str, bodies: Sequence[bytes], window: int = WINDOW
) -> None:
    """Publish persistent and mandatory, `window` at a time, each confirmed."""
    for start in range(0, len(bodies), window):
        await asyncio.gather(
            *(
                exchange.publish(persistent(body), routing_key, mandatory=True, timeout=30)
                for body in bodies[start : start + window]
            )
        )


async def open_exchange(
    url: str, names: Names
) -> tuple[aio_pika.abc.AbstractConnection, AbstractExchange]:
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await channel.get_exchange(names.messages_exchange, ensure=True)
    return connection, exchange


async def _serve(args: argparse.Namespace) -> None:
    bodies = group_bodies(args.sender, args.group, args.count)
    connection, exchange = await open_exchange(args.url, Names(args.namespace))
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.perf_counter()
        await publish_all(exchange, group_key(args.group), bodies)
        print(f"done {time.perf_counter() - started:.6f}", flush=True)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("group")
    parser.add_argument("--sender", required=True)
    parser.add_argument("--count", type=int, required=True)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()


async def spawn(module: str, *args: str) -> asyncio.subprocess.Process:
    """`python -m module *args`, talked to in lines over stdin and stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


class SenderProcess:
    """Controls `python -m bench.sender` from the benchmark's own event loop."""

    def __init__(self, url: str, namespace: str, group_id: str, sender: str, count: int) -> None:
        self.args = [url, namespace, group_id, "--sender", sender, "--count", str(count)]
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it and wait until its bodies are built and it is connected."""
        self._process = await spawn("bench.sender", *self.args)
        line = await self._line()
        if line != "ready":
            raise RuntimeError(f"the sender did not start: {line!r}")

    def go(self) -> float:
        """Let it publish; returns the start time (time.perf_counter)."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(b"go\n")
        return time.perf_counter()

    async def wait_done(self) -> float:
        """Seconds the sender needed to publish everything and get every confirm."""
        assert self._process is not None
        line = await self._line()
        await self._process.wait()
        if not line.startswith("done "):
            raise RuntimeError(f"the sender failed: {line!r}")
        return float(line.split()[1])

    async def run_until(
        self, received: Callable[[], Awaitable[object]], timeout: float
    ) -> tuple[float, float]:
        """Start it, let it publish everything, and wait until `received()` is done as
        well; return when it started (time.perf_counter) and how many seconds it needed
        to publish. It is stopped either way."""
        try:
            await self.start()
            started = self.go()
            send_seconds = await self.wait_done()
            await asyncio.wait_for(received(), timeout)
        finally:
            await self.stop()
        return started, send_seconds

    async def stop(self) -> None:
        """End the sender if it is still running (after a failure elsewhere)."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    async def _line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        return (await self._process.stdout.readline()).decode().strip()
