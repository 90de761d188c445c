"""The local cache holds every direct message: on a shared machine, nobody else may read it."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

from chat_tui.core.cache_policy import open_cache
from chat_tui.protocol.models import SendMessage


def from_bob(content: str) -> SendMessage:
    return SendMessage(
        message_id=uuid.uuid4(), sender_id="bob", recipient_id="alice", content=content
    )


async def test_the_cache_is_readable_by_its_user_alone(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        folder = tmp_path / "fresh"
        store = await open_cache(folder / "alice.sqlite3", "alice")
        try:
            await store.store_incoming([from_bob("private")], durable=True)
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            for name in ("alice.sqlite3", "alice.sqlite3-wal", "alice.sqlite3-shm"):
                assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
        finally:
            await store.close()
        loose = tmp_path / "old.sqlite3"
        loose.touch(mode=0o644)
        old = await open_cache(loose, "alice")
        await old.close()
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    finally:
        os.umask(previous)
