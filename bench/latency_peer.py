"""The sending side of the latency metric, in a process of its own.

Alice and bob are different people on different machines: in one process, alice's
confirm handling and bookkeeping would share bob's event loop and GIL at the very
moment bob receives. So the sender runs here, for chat-tui (alice's `ChatClient`) and
for the baseline (a plain aio-pika publisher with confirms) alike, driven by the
benchmark over stdin/stdout:

    -> ready                        (connected; for chat-tui, caught up with the directory)
    <- dm 7 | group 8 | plain 9     (send one message, numbered for its content)
    -> sent T ID                    (T: time.perf_counter() just before sending;
                                     ID: the message ID, or for plain the body in hex)
    -> settled                      (the broker confirmed it)

`time.perf_counter` is CLOCK_MONOTONIC on Linux, one clock for every process, so T
can be compared with the arrival times the benchmark records.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from bench.bodies import content, group_body
from bench.probe import ProbeSink
from bench.sender import open_exchange, persistent, spawn
from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.names import Names, group_key


async def _commands() -> list[str]:
    line: str = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.split()


def _say(*words: object) -> None:
    print(*words, flush=True)


async def serve_chat(args: argparse.Namespace) -> None:
    settings = Settings(
        user=args.user, amqp_url=args.url, namespace=args.namespace, data_dir=Path(args.data_dir)
    )
    sink = ProbeSink()
    async with ChatClient(settings, sink) as alice:
        if not await alice.wait_online(30) or not await alice.wait_directory(30):
            raise RuntimeError(f"{args.user} did not come online")
        conversations = {"dm": Conversation.dm(args.peer), "group": Conversation.group(args.group)}
        _say("ready")
        while words := await _commands():
            kind, index = words[0], int(words[1])
            started = time.perf_counter()
            stored = await alice.send(conversations[kind], content(index))
            _say("sent", started, stored.message_id)
            await asyncio.wait_for(sink.wait_settled(stored.message_id), 30)
            _say("settled")


async def serve_plain(args: argparse.Namespace) -> None:
    connection, exchange = await open_exchange(args.url, Names(args.namespace))
    try:
        _say("ready")
        while words := await _commands():
            body = group_body(args.user, args.group, int(words[1]))
            started = time.perf_counter()
            await exchange.publish(persistent(body), group_key(args.group), mandatory=True)
            _say("sent", started, body.hex())
            _say("settled")
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("side", choices=["chat", "plain"])
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("--user", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--peer", default="bob", help="who direct messages go to")
    parser.add_argument("--data-dir", default=".")
    args = parser.parse_args()
    asyncio.run(serve_chat(args) if args.side == "chat" else serve_plain(args))


if __name__ == "__main__":
    main()


class LatencyPeer:
    """Controls `python -m bench.latency_peer` from the benchmark's event loop."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> LatencyPeer:
        self._process = await spawn("bench.latency_peer", *self.args)
        line = await asyncio.wait_for(self._line(), 60)
        if line != "ready":
            raise RuntimeError(f"the latency peer did not start: {line!r}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._process is not None and self._process.stdin is not None
        if self._process.returncode is None:
            self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), 30)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()

    async def send(self, kind: str, index: int) -> tuple[float, str]:
        """Have it send one message; (when it started, the message's ID or body hex)."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(f"{kind} {index}\n".encode())
        words = (await asyncio.wait_for(self._line(), 30)).split()
        if len(words) != 3 or words[0] != "sent":
            raise RuntimeError(f"the latency peer failed: {words!r}")
        return float(words[1]), words[2]

    async def wait_settled(self) -> None:
        line = await asyncio.wait_for(self._line(), 30)
        if line != "settled":
            raise RuntimeError(f"the latency peer failed: {line!r}")

    async def _line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        return (await self._process.stdout.readline()).decode().strip()
