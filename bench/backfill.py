"""A new member's backfill: joining a group whose archive holds 10,000 messages, and
paging all of them into the cache (`python -m bench.backfill [--messages N] [--runs R]`).

The archive runs as its own process (`chat-tui archive`, SQLite), its database filled
beforehand through the archive's own `store`. Each run is a new member, bob, with an
empty cache: the time from calling `join_group("big")` until the cache holds every
message, through `ChatClient.history.load_older` pages of 200 (the protocol's largest).

Beside it, in the same run:
- the cache's share alone: `Store.store_archived` of the same messages in pages of 200,
  with no broker and no archive;
- the plain baseline: the same rows inserted into a bare SQLite table of the same columns
  by one `executemany` in one transaction (no index but the key, no full-text index).

Then the app opens the backfilled conversation (bench/conversation_open.py's probe on the
last run's cache), to check that its goal still holds after a backfill.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika

from bench.bodies import content
from bench.conversation_open import BIG, PEER, SMALL, USER, run_probe
from bench.deployment import BenchDeployment, until
from bench.report import Goal, Result, table
from chat_tui.archive.database import open_archive_database
from chat_tui.core.cache_policy import open_cache
from chat_tui.core.client import ChatClient
from chat_tui.core.sink import Sink
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import SendMessage
from chat_tui.store.timestamps import iso

PAGE = 200


def history_of(count: int) -> list[SendMessage]:
    start = datetime.now(UTC) - timedelta(days=30)
    return [
        SendMessage(
            message_id=uuid.uuid4(),
            sender_id=PEER,
            group_id=BIG.name,
            content=content(i),
            timestamp=start + timedelta(seconds=i),
        )
        for i in range(count)
    ]


class Filled(Sink):
    def __init__(self) -> None:
        self.first = asyncio.Event()

    def history_filled(self, conversation: Conversation, count: int) -> None:
        self.first.set()


async def fill_archive(location: str, messages: list[SendMessage]) -> None:
    database = open_archive_database(location)
    await database.open()
    try:
        for start in range(0, len(messages), 1000):
            await database.store(messages[start : start + 1000])
    finally:
        await database.close()


async def start_archive(deployment: BenchDeployment, location: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "CHAT_TUI_AMQP_URL": deployment.amqp_url,
        "CHAT_TUI_NAMESPACE": deployment.namespace,
        "CHAT_TUI_DATA_DIR": str(deployment.data_dir / "archive"),
        "CHAT_TUI_USER": "archivist",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chat_tui",
        "archive",
        "--archive-db",
        location,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def consuming() -> bool:
        if process.returncode is not None:
            raise RuntimeError(f"chat-tui archive exited with {process.returncode}")
        connection = await deployment.connect()
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(
                deployment.names.archive_requests_queue, passive=True
            )
        except aio_pika.exceptions.ChannelClosed:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()
        result = queue.declaration_result
        return bool(result and result.consumer_count)

    await until(consuming, "the archive to consume its requests")
    return process


async def one_member(deployment: BenchDeployment, run: int, count: int) -> float:
    """Seconds from join to `count` messages in a new member's empty cache."""
    sink = Filled()
    # A new user each run (the first is the one the open probe reads as).
    member = USER if run == 0 else f"{USER}{run}"
    settings = deployment.settings(member, data_dir=deployment.data_dir / f"member-{run}")
    client = ChatClient(settings, sink)
    await client.start()
    deployment.clients.append(client)
    if not await client.wait_online(30) or not await client.wait_directory(30):
        raise RuntimeError(f"{member} did not come online")
    started = time.perf_counter()
    await client.join_group(BIG.name)
    await asyncio.wait_for(sink.first.wait(), 30)
    while await client.history.load_older(BIG, limit=PAGE):
        pass
    elapsed = time.perf_counter() - started
    cached = await client.store.message_count(BIG)
    if cached != count:
        raise RuntimeError(f"the backfill cached {cached} of {count} messages")
    await deployment.stop_client(client)
    if run == 0:
        # Leave this cache where the conversation-open probe looks for it.
        await _prepare_for_open(deployment, settings.database_path)
    return elapsed


def _move_cache(path: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(Path(f"{target}{suffix}"))


async def _prepare_for_open(deployment: BenchDeployment, path: Path) -> None:
    """The probe opens bob's cache in the deployment's data folder, with a small DM."""
    target = deployment.settings(USER).database_path
    await asyncio.to_thread(_move_cache, path, target)
    store = await open_cache(target, USER)
    try:
        small = [
            SendMessage(
                message_id=uuid.uuid4(), sender_id=PEER, recipient_id=USER, content=content(i)
            )
            for i in range(20)
        ]
        await store.store_incoming(small, send_delivered=False)
        summary = next(s for s in await store.conversations() if s.conversation == SMALL)
        await store.mark_read(SMALL, summary.last_seq, send_receipts=False)
    finally:
        await store.close()


async def store_only(deployment: BenchDeployment, messages: list[SendMessage]) -> float:
    store = await open_cache(deployment.data_dir / "store-only.sqlite3", USER)
    try:
        started = time.perf_counter()
        for end in range(len(messages), 0, -PAGE):
            await store.store_archived(messages[max(0, end - PAGE) : end])
        return time.perf_counter() - started
    finally:
        await store.close()


def bare_executemany(path: Path, messages: list[SendMessage]) -> float:
    rows = [
        (str(m.message_id), BIG.key, m.sender_id, m.content, iso(m.timestamp), iso(m.timestamp))
        for m in messages
    ]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            """CREATE TABLE messages (seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL,
                   conversation_key TEXT NOT NULL, sender_id TEXT NOT NULL,
                   content TEXT NOT NULL, sent_at TEXT NOT NULL, stored_at TEXT NOT NULL)"""
        )
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(
            """INSERT INTO messages (message_id, conversation_key, sender_id, content,
                   sent_at, stored_at) VALUES (?, ?, ?, ?, ?, ?)""",
            rows,
        )
        conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


async def measure(count: int, runs: int, open_repeats: int) -> list[Result]:
    deployment = BenchDeployment()
    archive: asyncio.subprocess.Process | None = None
    try:
        messages = history_of(count)
        location = str(deployment.data_dir / "archive" / "archive.sqlite3")
        await fill_archive(location, messages)
        archive = await start_archive(deployment, location)
        carol = await deployment.client(PEER)
        await carol.create_group(BIG.name)
        await deployment.stop_client(carol)
        seconds = [await one_member(deployment, run, count) for run in range(runs)]
        cache_alone = await store_only(deployment, messages)
        plain = bare_executemany(deployment.data_dir / "bare.sqlite3", messages)
        opens = []
        for _ in range(open_repeats):
            opens.append((await run_probe(deployment, "switch"))["seconds"] * 1000)
    finally:
        if archive is not None and archive.returncode is None:
            archive.terminate()
            await archive.wait()
        await deployment.cleanup()
    best = min(seconds)
    median = statistics.median(seconds)
    opens.sort()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        Result(
            "backfill: join to 10,000 cached" if count == 10_000 else f"backfill: {count:,}",
            median,
            "s",
            baseline=plain,
            goal=Goal("value", "<", 2.0, "s"),
            note=(
                f"median of {runs} new members ({best:.2f}-{max(seconds):.2f} s), pages of "
                f"{PAGE} from chat-tui archive (SQLite, own process); baseline: bare "
                f"executemany of the same rows; load {load}"
            ),
        ),
        Result(
            "backfill: the cache's share",
            cache_alone,
            "s",
            baseline=plain,
            note=f"Store.store_archived of the same messages in pages of {PAGE}, no broker",
        ),
        Result(
            "conversation open after a backfill",
            statistics.median(opens),
            "ms",
            goal=Goal("value", "<", 100, "ms"),
            note=f"{count:,} backfilled messages; median of {len(opens)} fresh processes",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--open-repeats", type=int, default=3)
    args = parser.parse_args()
    results = asyncio.run(measure(args.messages, args.runs, args.open_repeats))
    print(table(results))


if __name__ == "__main__":
    main()
