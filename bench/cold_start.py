"""Metric 5: cold start, from spawning `chat-tui` to its first interactive frame.

`chat-tui` (the installed console script, as a user runs it) starts in a pseudo-
terminal of 120x40 with TERM=xterm-256color, for a registered user with a small cache,
against the real broker. The first interactive frame is the first output, with escape
sequences stripped, that contains the main screen's footer ("Go to", a binding only
MainScreen has): the screen is mounted, the composer is focused and keys are read.
The app is then quit with Ctrl+Q. The median of several starts is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import re
import statistics
import struct
import sys
import termios
import time
from pathlib import Path

from bench.deployment import BenchDeployment
from bench.report import Goal, Result
from bench.sizes import Sizes

USER = "bob"
COLUMNS, LINES = 120, 40
MARKER = "Go to"
ANSI = re.compile(rb"\x1b(\[[0-9;?<>=$]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|.)")
CTRL_Q = b"\x11"


def chat_tui_command() -> list[str]:
    script = Path(sys.executable).with_name("chat-tui")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "chat_tui"]


async def one_start(deployment: BenchDeployment) -> float:
    """Seconds from spawn to the first frame with the main screen."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": str(COLUMNS),
        "LINES": str(LINES),
        "CHAT_TUI_USER": USER,
        "CHAT_TUI_NAMESPACE": deployment.namespace,
        "CHAT_TUI_DATA_DIR": str(deployment.data_dir),
        "CHAT_TUI_AMQP_URL": deployment.amqp_url,
    }
    loop = asyncio.get_running_loop()
    seen = asyncio.Event()
    output = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            loop.remove_reader(master)
            seen.set()
            return
        output.extend(chunk)
        if MARKER.encode() in ANSI.sub(b"", bytes(output)):
            seen.set()

    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *chat_tui_command(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    loop.add_reader(master, readable)
    try:
        await asyncio.wait_for(seen.wait(), 60)
        elapsed = time.perf_counter() - started
        if MARKER.encode() not in ANSI.sub(b"", bytes(output)):
            raise RuntimeError(f"chat-tui ended before its main screen: {bytes(output)[-500:]!r}")
        return elapsed
    finally:
        with contextlib.suppress(OSError):
            os.write(master, CTRL_Q)
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.terminate()
            await process.wait()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(master)
        os.close(master)


async def measure(deployment: BenchDeployment, sizes: Sizes) -> list[Result]:
    await deployment.register(USER)
    await one_start(deployment)  # the first start also compiles bytecode; not counted
    starts = sorted([await one_start(deployment) for _ in range(sizes.cold_starts)])
    note = (
        f"median of {len(starts)} starts in a {COLUMNS}x{LINES} pty, "
        f"{starts[0]:.2f}-{starts[-1]:.2f} s"
    )
    return [
        Result(
            "cold start",
            statistics.median(starts),
            "s",
            goal=Goal("value", "<", 1.0, "s"),
            note=note,
        )
    ]
