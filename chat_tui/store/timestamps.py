"""How the cache writes times: ISO 8601 text in UTC, which sorts as it reads."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
