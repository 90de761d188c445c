"""A TCP proxy between the clients and the private node that can fail on purpose.

- `partition()` cuts every connection and refuses new ones (until `heal()`);
- `stall()` keeps every connection open but stops forwarding bytes (until `heal()`);
- `delay` adds latency to every chunk, in both directions;
- `hold_publishes` lets a client connect and declare, but holds back everything it
  sends from its first AMQP basic.publish on: no publish reaches the broker, so no
  confirm can come back ("Enter was pressed, the confirm has not come").

It runs its own event loop on a thread, so a test may block (waiting for a node to
start, for a subprocess) while the proxy keeps forwarding.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 65536


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.delay = 0.0
        self.connections_accepted = 0
        self.connections_cut = 0
        self.hold_publishes = False
        self.publishes_held = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._refusing = False
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    # --- control (from any thread) ---------------------------------------------------

    def url(self, user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    def start(self) -> None:
        self._thread.start()
        self._call(self._start)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._call(self._close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def partition(self) -> None:
        """Cut every open connection and refuse new ones until heal()."""
        self._call(self._partition)

    def stall(self) -> None:
        """Stop forwarding, in both directions, without closing anything."""
        self._call(self._stall)

    def heal(self) -> None:
        self._call(self._heal)

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def _call(self, make: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(30)

    # --- the loop's side -------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        await self._partition()
        if self._server is not None:
            self._server.close()

    async def _partition(self) -> None:
        self._refusing = True
        for client, upstream in list(self._links):
            self.connections_cut += 1
            client.transport.abort()
            upstream.transport.abort()
        self._links.clear()

    async def _stall(self) -> None:
        assert self._flowing is not None
        self._flowing.clear()

    async def _heal(self) -> None:
        assert self._flowing is not None
        self._refusing = False
        self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        if self._refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, from_client=True), self._pump(up_reader, writer)
            )
        finally:
            self._links.discard(link)
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_client: bool = False
    ) -> None:
        assert self._flowing is not None
        scanner = PublishScanner() if from_client else None
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                # A stall that began while we read holds this chunk back too.
                await self._flowing.wait()
                if scanner is not None and self.hold_publishes:
                    before = scanner.bytes_before_publish(data)
                    if before is not None:
                        writer.write(data[:before])
                        await writer.drain()
                        self.publishes_held += 1
                        await asyncio.Event().wait()  # held until the link is cut
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


class PublishScanner:
    """Finds the first basic.publish in a client's byte stream (AMQP 0-9-1 framing:
    type, channel, size, payload, 0xCE; a method payload starts with class and method)."""

    PUBLISH = b"\x00\x3c\x00\x28"  # class 60 (basic), method 40 (publish)

    def __init__(self) -> None:
        self._buffer = b""
        self._consumed = 0  # bytes of the stream before self._buffer
        self._header_left = 8  # "AMQP" 0 0 9 1

    def bytes_before_publish(self, chunk: bytes) -> int | None:
        """Feed CHUNK; return how many of its bytes come before a publish frame, if any."""
        start = self._consumed + len(self._buffer)
        self._buffer += chunk
        if self._header_left:
            skip = min(self._header_left, len(self._buffer))
            self._header_left -= skip
            self._buffer = self._buffer[skip:]
            self._consumed += skip
        while len(self._buffer) >= 7:
            kind = self._buffer[0]
            size = int.from_bytes(self._buffer[3:7], "big")
            if len(self._buffer) < 8 + size:
                break
            if kind == 1 and self._buffer[7:11] == self.PUBLISH:
                return max(0, self._consumed - start)
            self._buffer = self._buffer[8 + size :]
            self._consumed += 8 + size
        return None
