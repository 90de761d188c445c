"""The receive path's store work alone, without a broker: `python -m bench.store_only`.

Stores COUNT group messages in batches of 100 the way InboxPipeline does (commit without
fsync, then mark shown and fsync in one trip) and prints microseconds per message, so a
change to chat_tui/store can be compared without the noise of a broker run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from chat_tui.core.cache_policy import open_cache
from chat_tui.protocol.models import SendMessage

BATCH = 100


async def measure(count: int) -> float:
    """Microseconds per message for storing `count` messages."""
    with tempfile.TemporaryDirectory(prefix="chat-tui-store-bench-") as folder:
        store = await open_cache(Path(folder) / "bench.sqlite3", "bob")
        messages = [
            SendMessage(
                message_id=uuid.uuid4(), sender_id="carol", group_id="bench", content="x" * 120
            )
            for _ in range(count)
        ]
        began = time.perf_counter()
        for start in range(0, count, BATCH):
            result = await store.store_incoming(messages[start : start + BATCH], durable=False)
            await store.mark_shown([m.seq for m in result.to_show], then_sync=True)
        elapsed = time.perf_counter() - began
        await store.close()
    return elapsed / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("count", nargs="?", type=int, default=20_000, help="messages to store")
    count = parser.parse_args().count
    print(f"store_incoming + mark_shown: {asyncio.run(measure(count)):.1f} us per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
