"""Archive search over a million messages, on SQLite and PostgreSQL:
`python -m bench.archive_search [--backend sqlite|postgres|both] [--messages N]`.

The archive is filled once with generated chat (a vocabulary of 5,000 made-up words
drawn by Zipf's law, over 1,000 conversations, a year of timestamps) and kept for the
next run: the SQLite file in --cache-dir, the PostgreSQL database on --server (drop it
with `DROP DATABASE`, its name is printed). Then one requester, a member of 20 groups
and party to 5 DMs (about 2.5% of the archive), runs each kind of query through the
archive's own `search()`, one at a time, and the run prints p50 and p99 per kind.

The baseline, in the same run on the same table through the same code path, is the
newest history page of one of the requester's conversations (`history()`, an index
range scan): what the cheapest read of the archive costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path

import asyncpg

from chat_tui.archive.database import (
    ArchiveDatabase,
    ConversationRef,
    Readable,
    open_archive_database,
)
from chat_tui.archive.database.rows import stored_content
from chat_tui.protocol.models import SendMessage

DATA_VERSION = 1
"""Part of the cached archive's name: change it when the generated data changes."""
VOCABULARY = 5_000
ZIPF_EXPONENT = 1.0
USERS = 2_000
GROUP_SIZE = 25
DM_SHARE = 0.1
"""The share of conversations that are DMs."""
REQUESTER = "reader"
REQUESTER_GROUPS = 20
REQUESTER_DMS = 5
SEARCH_LIMIT = 20
BATCH = 20_000
SEED = 12
YEAR = timedelta(days=365)
BEGINNING = datetime(2025, 11, 1, tzinfo=UTC)
GOAL_MS = 50.0


@dataclass(frozen=True)
class Corpus:
    """The generated archive's shape: which conversations there are, and the words."""

    words: list[str]
    cumulative: list[float]
    conversations: list[ConversationRef]
    members: dict[str, list[str]]
    readable: Readable

    @property
    def readable_conversations(self) -> list[ConversationRef]:
        return [
            c
            for c in self.conversations
            if (c.group_id in self.readable.groups)
            or (c.parties is not None and REQUESTER in c.parties)
        ]


def _made_up_word(rng: random.Random, taken: set[str]) -> str:
    syllables = ["ka", "lo", "mi", "ne", "tu", "ra", "si", "po", "de", "fa", "gu", "be", "zo"]
    while True:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in taken:
            taken.add(word)
            return word


def corpus(conversation_count: int) -> Corpus:
    rng = random.Random(SEED)
    taken: set[str] = set()
    words = [_made_up_word(rng, taken) for _ in range(VOCABULARY)]
    cumulative = list(accumulate(1 / rank**ZIPF_EXPONENT for rank in range(1, VOCABULARY + 1)))
    users = [f"u{i:04d}" for i in range(USERS)]
    dm_count = int(conversation_count * DM_SHARE)
    group_count = conversation_count - dm_count
    conversations: list[ConversationRef] = []
    members: dict[str, list[str]] = {}
    for i in range(group_count):
        group = ConversationRef.group(f"g{i:04d}")
        conversations.append(group)
        members[group.key] = rng.sample(users, GROUP_SIZE)
    groups = frozenset(c.group_id for c in conversations[:REQUESTER_GROUPS] if c.group_id)
    for i in range(dm_count):
        a, b = (REQUESTER, users[i]) if i < REQUESTER_DMS else tuple(rng.sample(users, 2))
        dm = ConversationRef.dm(a, b)
        conversations.append(dm)
        assert dm.parties is not None
        members[dm.key] = list(dm.parties)
    for group in conversations[:REQUESTER_GROUPS]:
        members[group.key].append(REQUESTER)
    return Corpus(words, cumulative, conversations, members, Readable(REQUESTER, groups))


def messages(shape: Corpus, count: int) -> Iterator[list[SendMessage]]:
    """`count` messages in batches, oldest first, the same ones on every run."""
    rng = random.Random(SEED + 1)
    step = YEAR / count
    for start in range(0, count, BATCH):
        batch = []
        for i in range(start, min(count, start + BATCH)):
            conversation = rng.choice(shape.conversations)
            sender = rng.choice(shape.members[conversation.key])
            length = min(60, 1 + int(rng.expovariate(1 / 11)))
            text = " ".join(rng.choices(shape.words, cum_weights=shape.cumulative, k=length))
            group_id, recipient_id = conversation.group_id, None
            if conversation.parties is not None:
                low, high = conversation.parties
                recipient_id = high if sender == low else low
            batch.append(
                SendMessage(
                    message_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                    sender_id=sender,
                    group_id=group_id,
                    recipient_id=recipient_id,
                    content=text,
                    timestamp=BEGINNING + step * i,
                )
            )
        yield batch


async def fill_sqlite(archive: ArchiveDatabase, shape: Corpus, count: int) -> None:
    """Through the archive's own store(), a big batch per transaction."""
    for batch in messages(shape, count):
        await archive.store(batch)
        print(f"   {await archive.count():,} stored", end="\r", file=sys.stderr, flush=True)


async def fill_postgres(url: str, shape: Corpus, count: int) -> None:
    """With COPY into the table the archive's open() made (its generated tsvector column
    and GIN index included), then ANALYZE, as a deployment's autovacuum would."""
    conn = await asyncpg.connect(url)
    try:
        for batch in messages(shape, count):
            records = [
                (
                    m.message_id,
                    ConversationRef.of_message(m).key,
                    m.group_id,
                    m.sender_id,
                    m.recipient_id,
                    stored_content(m),
                    m.timestamp,
                )
                for m in batch
            ]
            await conn.copy_records_to_table(
                "archive_messages",
                records=records,
                columns=[
                    "message_id",
                    "conversation",
                    "group_id",
                    "sender_id",
                    "recipient_id",
                    "content",
                    "sent_at",
                ],
            )
            done = await conn.fetchval("SELECT count(*) FROM archive_messages")
            print(f"   {done:,} copied", end="\r", file=sys.stderr, flush=True)
        await conn.execute("VACUUM ANALYZE archive_messages")
    finally:
        await conn.close()


@dataclass(frozen=True)
class Timing:
    backend: str
    kind: str
    queries: int
    p50_ms: float
    p99_ms: float
    mean_hits: float


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


Query = Callable[[], Awaitable[int]]


def query_kinds(
    archive: ArchiveDatabase, shape: Corpus, sample: list[SendMessage], count: int
) -> dict[str, list[Query]]:
    """Each kind of query, `count` of them, the same on both backends."""
    rng = random.Random(SEED + 2)
    readable = shape.readable
    mine = shape.readable_conversations

    def search(text: str, within: ConversationRef | None = None) -> Query:
        async def run() -> int:
            return len(await archive.search(text, readable, within, SEARCH_LIMIT))

        return run

    def page(conversation: ConversationRef) -> Query:
        async def run() -> int:
            return len((await archive.history(conversation, None, "older", SEARCH_LIMIT))[0])

        return run

    async def dm_peers() -> int:
        return len(await archive.dm_peers(REQUESTER, 500))

    def words_of(message: SendMessage, k: int) -> str:
        words = list(dict.fromkeys(message.content.split()))
        return " ".join(rng.sample(words, min(k, len(words))))

    rare = shape.words[200:]
    return {
        "baseline: newest history page": [page(rng.choice(mine)) for _ in range(count)],
        "one rarer word (rank 200-5000)": [search(rng.choice(rare)) for _ in range(count)],
        "two words from a message": [search(words_of(rng.choice(sample), 2)) for _ in range(count)],
        "one common word (rank 1-50)": [search(rng.choice(shape.words[:50])) for _ in range(count)],
        "rarer word within one conversation": [
            search(rng.choice(rare), rng.choice(mine)) for _ in range(count)
        ],
        # Not a search: asked once per new device, so no goal of its own.
        "the requester's DM peers": [dm_peers] * max(1, count // 10),
    }


async def measure(
    backend: str, archive: ArchiveDatabase, shape: Corpus, count: int
) -> list[Timing]:
    # Messages the requester can read, from which "two words" queries are taken.
    sample: list[SendMessage] = []
    for conversation in shape.readable_conversations:
        sample += (await archive.history(conversation, None, "older", 20))[0]
    timings = []
    for kind, queries in query_kinds(archive, shape, sample, count).items():
        for warm in queries[:3]:
            await warm()
        elapsed: list[float] = []
        hits: list[int] = []
        for query in queries:
            began = time.perf_counter()
            hits.append(await query())
            elapsed.append((time.perf_counter() - began) * 1000)
        timings.append(
            Timing(
                backend,
                kind,
                len(queries),
                statistics.median(elapsed),
                percentile(elapsed, 0.99),
                statistics.fmean(hits),
            )
        )
        print(f"   {backend}: {kind}: p50 {timings[-1].p50_ms:.1f} ms", file=sys.stderr)
    return timings


async def run_sqlite(args: argparse.Namespace, shape: Corpus) -> list[Timing]:
    name = f"archive-search-v{DATA_VERSION}-{args.messages}-{args.conversations}.sqlite3"
    path = args.cache_dir / name
    complete = path.with_suffix(".complete")
    if not complete.exists():
        for stale in args.cache_dir.glob(f"{name}*"):
            stale.unlink()
        began = time.monotonic()
        archive = open_archive_database(str(path))
        await archive.open()
        await fill_sqlite(archive, shape, args.messages)
        await archive.close()
        complete.write_text("")
        print(f"   sqlite: filled {path} in {time.monotonic() - began:.0f} s", file=sys.stderr)
    archive = open_archive_database(str(path))
    await archive.open()
    try:
        assert await archive.count() == args.messages
        return await measure("sqlite", archive, shape, args.queries)
    finally:
        await archive.close()


async def run_postgres(args: argparse.Namespace, shape: Corpus) -> list[Timing]:
    name = f"chat_tui_bench_archive_v{DATA_VERSION}_{args.messages}_{args.conversations}"
    url = f"{args.server}/{name}"
    admin = await asyncpg.connect(f"{args.server}/postgres")
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        complete = False
        if exists:
            conn = await asyncpg.connect(url)
            try:
                complete = bool(await conn.fetchval("SELECT to_regclass('bench_complete')"))
            finally:
                await conn.close()
        if not complete:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    archive = open_archive_database(url)
    await archive.open()
    try:
        if not complete:
            began = time.monotonic()
            await fill_postgres(url, shape, args.messages)
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("CREATE TABLE bench_complete ()")
            finally:
                await conn.close()
            print(
                f"   postgres: filled {name} in {time.monotonic() - began:.0f} s", file=sys.stderr
            )
        assert await archive.count() == args.messages
        return await measure("postgres", archive, shape, args.queries)
    finally:
        await archive.close()
        print(f"   postgres: the archive is kept as database {name}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.archive_search", description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=200, help="of each kind")
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path("/tmp/chat-tui-bench"), help="for the SQLite file"
    )
    parser.add_argument("--json", type=Path, help="also write the timings here")
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load {load}", file=sys.stderr)
    shape = corpus(args.conversations)
    timings: list[Timing] = []
    if args.backend in ("sqlite", "both"):
        timings += asyncio.run(run_sqlite(args, shape))
    if args.backend in ("postgres", "both"):
        timings += asyncio.run(run_postgres(args, shape))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{args.messages:,} messages, {args.conversations:,} conversations, load {load}")
    print(f"{'backend':9} {'query':36} {'p50 ms':>8} {'p99 ms':>8} {'hits':>6}  goal")
    for t in timings:
        search = not t.kind.startswith("baseline") and "DM peers" not in t.kind
        verdict = ("met" if t.p50_ms < GOAL_MS else "MISSED") if search else ""
        print(
            f"{t.backend:9} {t.kind:36} {t.p50_ms:8.1f} {t.p99_ms:8.1f} {t.mean_hits:6.1f}"
            f"  {verdict}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(t) for t in timings], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
