"""How big each metric runs: `--quick` for a check in under 2 minutes, `--full` for
the numbers we keep (bench/results.json)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    latency_samples: int
    """Round trips per side (half DMs, half group messages for chat-tui)."""
    ingest_messages: int
    drain_messages: int
    fanout_members: int
    fanout_messages: int
    conversation_messages: int
    open_repeats: int
    """Fresh app processes per conversation-open figure (the median is reported)."""
    cold_starts: int


QUICK = Sizes(
    latency_samples=60,
    ingest_messages=4_000,
    drain_messages=10_000,
    fanout_members=10,
    fanout_messages=500,
    conversation_messages=100_000,
    open_repeats=3,
    cold_starts=3,
)
FULL = Sizes(
    latency_samples=400,
    ingest_messages=20_000,
    drain_messages=100_000,
    fanout_members=50,
    fanout_messages=1_000,
    conversation_messages=100_000,
    open_repeats=5,
    cold_starts=5,
)
