"""Fixtures of the archive's tests: PostgreSQL databases of their own (see pg_server.py),
and the service's world (see service_world.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.archive.pg_server import PrivateServer, fresh_database
from tests.archive.service_world import archive_db, world

__all__ = ["archive_db", "world"]


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A new empty database on the shared server, dropped after the test."""
    async with fresh_database() as url:
        yield url


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    """A private server, running, that the test may stop, crash and start again."""
    server = PrivateServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
