"""`chat-tui archive`'s settings: what it cannot use is refused with a clear error,
before it connects to anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_tui.cli.main import main
from chat_tui.config import CONFIG_FILE_ENV, load_settings


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--retention-days", "0"], "archive_retention_days: 0 days would purge every message"),
        (["--retention-days", "-3"], "give at least 1, or leave the setting out"),
        (["--archive-db", "mysql://db/archive"], "only postgresql:// URLs or SQLite file paths"),
        (["--archive-db", "  "], "archive_db: empty"),
    ],
)
def test_unusable_archive_settings_are_refused_clearly(
    flags: list[str],
    error: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "no-config.toml"))
    assert main(["archive", *flags]) == 1
    assert error in capsys.readouterr().err


def test_the_default_archive_is_a_sqlite_file_in_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "no-config.toml"))
    settings = load_settings(data_dir=tmp_path, namespace="team")
    assert settings.archive_database == str(tmp_path / "team-archive.sqlite3")
    assert settings.archive_retention_days is None
    monkeypatch.setenv("CHAT_TUI_ARCHIVE_DB", "postgresql://archive@db.example.org/chat")
    assert load_settings().archive_database == "postgresql://archive@db.example.org/chat"
