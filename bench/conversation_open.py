"""Metric 4: opening a 100,000-message conversation in the Textual app, and its RSS.

The parent fills a cache directly through `chat_tui.store` (no broker), then runs the
app headless (`App.run_test`) in a fresh subprocess, so that the RSS is the app's own:

- "conversation open": the app runs with a small DM open; the time from calling
  `MainScreen.open_conversation(big)` until the message view first renders a line of
  the big conversation (its `render_line`, i.e. the compositor painting it);
- "conversation open at start": the app is created with the big conversation as its
  `open_conversation`; the time from creating `ChatApp` until that first render;
- "RSS after open": the process's resident memory once the big one is painted.

There is no baseline: plain aio-pika has no screen. Usage of the probe side:
`python -m bench.conversation_open DATA_DIR NAMESPACE switch|start`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from bench.bodies import content
from bench.deployment import BenchDeployment
from bench.report import Goal, Result
from bench.sizes import Sizes
from chat_tui.core.cache_policy import open_cache
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import DirectoryEvent, SendMessage

USER = "bob"
PEER = "carol"
BIG = Conversation.group("big")
SMALL = Conversation.dm(PEER)
CHUNK = 2_000
UNREACHABLE = "amqp://guest:guest@127.0.0.1:9/"
SCREEN = (120, 40)


async def fill_cache(deployment: BenchDeployment, count: int) -> None:
    """BIG gets `count` messages from carol, read up to the newest; SMALL gets 20."""
    settings = deployment.settings(USER)
    store = await open_cache(settings.database_path, USER)
    try:
        await store.apply_directory(
            [
                DirectoryEvent(event="registered", user_id=USER),
                DirectoryEvent(event="registered", user_id=PEER),
                DirectoryEvent(event="created", user_id=PEER, group_id=BIG.name),
                DirectoryEvent(event="joined", user_id=PEER, group_id=BIG.name),
                DirectoryEvent(event="joined", user_id=USER, group_id=BIG.name),
            ]
        )
        for start in range(0, count, CHUNK):
            batch = [
                SendMessage(
                    message_id=uuid.uuid4(), sender_id=PEER, group_id=BIG.name, content=content(i)
                )
                for i in range(start, min(start + CHUNK, count))
            ]
            await store.store_incoming(batch, send_delivered=False)
        small = [
            SendMessage(
                message_id=uuid.uuid4(), sender_id=PEER, recipient_id=USER, content=content(i)
            )
            for i in range(20)
        ]
        await store.store_incoming(small, send_delivered=False)
        for conversation in (BIG, SMALL):
            summary = next(s for s in await store.conversations() if s.conversation == conversation)
            await store.mark_read(conversation, summary.last_seq, send_receipts=False)
        if await store.message_count(BIG) != count:
            raise RuntimeError("the cache did not get every message")
    finally:
        await store.close()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def probe(data_dir: Path, namespace: str, mode: str) -> dict[str, float]:
    """Runs in the subprocess: open the app headless and time the first paint."""
    from textual.strip import Strip

    from chat_tui.config import Settings
    from chat_tui.tui.app import ChatApp
    from chat_tui.tui.widgets.conversation.message_view import MessageView

    painted: dict[Conversation, float] = {}
    painted_event = asyncio.Event()
    render_line = MessageView.render_line

    def render_and_note(view: MessageView, y: int) -> Strip:
        strip = render_line(view, y)
        window = view.messages
        shown = view.conversation
        belongs = shown is not None and window and window[-1].conversation == shown
        if belongs and shown is not None and shown not in painted:
            painted[shown] = time.perf_counter()
            painted_event.set()
        return strip

    MessageView.render_line = render_and_note  # type: ignore[method-assign,assignment]

    async def wait_painted(conversation: Conversation) -> float:
        async with asyncio.timeout(60):
            while conversation not in painted:
                painted_event.clear()
                await painted_event.wait()
        return painted[conversation]

    settings = Settings(user=USER, namespace=namespace, data_dir=data_dir, amqp_url=UNREACHABLE)
    first = BIG if mode == "start" else SMALL
    created = time.perf_counter()
    app = ChatApp(settings, open_conversation=first, connect=False)
    async with app.run_test(size=SCREEN) as pilot:
        at_start = await wait_painted(first) - created
        if mode == "start":
            await pilot.pause()
            return {"seconds": at_start, "rss_mb": rss_mb()}
        await pilot.pause()
        screen = app.main_screen
        assert screen is not None
        started = time.perf_counter()
        await screen.open_conversation(BIG)
        opened = await wait_painted(BIG) - started
        await pilot.pause()
        return {"seconds": opened, "rss_mb": rss_mb()}


async def run_probe(deployment: BenchDeployment, mode: str) -> dict[str, float]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.conversation_open",
        str(deployment.data_dir),
        deployment.namespace,
        mode,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 180)
    if process.returncode != 0:
        raise RuntimeError(f"the conversation-open probe failed: {err.decode()[-2000:]}")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def measure(deployment: BenchDeployment, sizes: Sizes) -> list[Result]:
    count = sizes.conversation_messages
    await fill_cache(deployment, count)
    switches = [await run_probe(deployment, "switch") for _ in range(sizes.open_repeats)]
    starts = [await run_probe(deployment, "start") for _ in range(sizes.open_repeats)]
    ms = 1000.0
    opened = sorted(r["seconds"] * ms for r in switches)
    at_start = sorted(r["seconds"] * ms for r in starts)
    rss = max(r["rss_mb"] for r in switches + starts)
    note = (
        f"{count:,} messages, {SCREEN[0]}x{SCREEN[1]} headless; median of "
        f"{len(opened)} fresh processes, {opened[0]:.0f}-{opened[-1]:.0f} ms"
    )
    return [
        Result(
            "conversation open",
            statistics.median(opened),
            "ms",
            goal=Goal("value", "<", 100, "ms"),
            note=note,
        ),
        Result(
            "conversation open at start",
            statistics.median(at_start),
            "ms",
            note=f"from creating ChatApp; {at_start[0]:.0f}-{at_start[-1]:.0f} ms",
        ),
        Result(
            "RSS after open",
            rss,
            "MB",
            goal=Goal("value", "<", 150, "MB"),
            note="the largest of all probe processes",
        ),
    ]


def main() -> None:
    data_dir, namespace, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    print(json.dumps(asyncio.run(probe(data_dir, namespace, mode))))


if __name__ == "__main__":
    main()
