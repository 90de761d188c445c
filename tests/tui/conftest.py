"""Fixtures for the app's tests: settings over a fixed cache, with no broker in the picture."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chat_tui.config import Settings
from tests.tui.cache_fill import fill_sample_cache

UNREACHABLE_URL = "amqp://guest:guest@127.0.0.1:1/"


@pytest.fixture
def offline_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """alice, with an empty cache and a broker URL where nothing listens."""
    monkeypatch.setenv("CHAT_TUI_CONFIG_FILE", str(tmp_path / "no-config.toml"))
    return Settings(
        user="alice",
        amqp_url=UNREACHABLE_URL,
        namespace="offline",
        data_dir=tmp_path / "data",
        reconnect_interval=5.0,
        theme="textual-dark",
    )


@pytest.fixture
def sample_settings(offline_settings: Settings) -> Settings:
    """alice's settings over the fixed sample cache (see cache_fill.py)."""
    asyncio.run(fill_sample_cache(offline_settings))
    return offline_settings
