"""Settings come from flags, then CHAT_TUI_* variables, then the TOML file, then defaults."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chat_tui.config import Settings, default_user, load_settings
from tests.conftest import Deployment


def closed_port_url(tag: str) -> str:
    """A URL on a local port where nothing listens; `tag` makes it recognisable."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"amqp://{tag}:pw@127.0.0.1:{port}/"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CHAT_TUI_* variable from the outside; the config file points into tmp_path."""
    for name in list(os.environ):
        if name.startswith("CHAT_TUI_"):
            monkeypatch.delenv(name)
    config = tmp_path / "config.toml"
    monkeypatch.setenv("CHAT_TUI_CONFIG_FILE", str(config))
    return config


def test_defaults_when_nothing_is_configured(clean_env: Path) -> None:
    settings = load_settings()
    assert settings.amqp_url == "amqp://guest:guest@localhost:5672/"
    assert settings.namespace == "chat"
    assert settings.read_receipts is True
    assert settings.user == default_user()
    assert settings.data_dir.name == "chat-tui"
    assert settings.database_path == settings.data_dir / f"chat-{settings.user}.sqlite3"


def test_flags_beat_environment_beat_file_beat_defaults(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.write_text(
        'user = "from-file"\n'
        'namespace = "filens"\n'
        'amqp_url = "amqp://file@host/"\n'
        "read_receipts = false\n"
        f'data_dir = "{tmp_path / "file-data"}"\n'
    )
    from_file = load_settings()
    assert (from_file.user, from_file.namespace, from_file.amqp_url) == (
        "from-file",
        "filens",
        "amqp://file@host/",
    )
    assert from_file.read_receipts is False
    assert from_file.data_dir == tmp_path / "file-data"

    monkeypatch.setenv("CHAT_TUI_USER", "from-env")
    monkeypatch.setenv("CHAT_TUI_READ_RECEIPTS", "true")
    from_env = load_settings()
    assert from_env.user == "from-env"
    assert from_env.read_receipts is True
    assert from_env.namespace == "filens"  # not in the environment: the file still counts

    flagged = load_settings(user="from-flag", read_receipts=False, namespace=None)
    assert flagged.user == "from-flag"
    assert flagged.read_receipts is False
    assert flagged.namespace == "filens"  # a flag not given (None) does not override


def test_invalid_settings_are_refused(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="invalid user ID"):
        load_settings(user="Not Valid")
    monkeypatch.setenv("CHAT_TUI_NAMESPACE", "bad namespace!")
    with pytest.raises(ValueError, match="invalid namespace"):
        Settings()


async def _queued_for(deployment: Deployment, env: dict[str, str], *flags: str) -> str:
    """Run an offline `send` and return what it says: it names the broker it tried."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "chat_tui", "send", "--dm", "bob", "hello", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("queued: "), result.stdout
    return result.stdout


async def test_command_line_applies_the_same_precedence(
    deployment: Deployment, tmp_path: Path
) -> None:
    file_url, env_url, flag_url = (closed_port_url(t) for t in ("fileuser", "envuser", "flaguser"))
    config = tmp_path / "cli-config.toml"
    config.write_text(f'user = "carol"\namqp_url = "{file_url}"\n')
    env = deployment.cli_env(CHAT_TUI_CONFIG_FILE=str(config))
    del env["CHAT_TUI_AMQP_URL"]
    env.pop("CHAT_TUI_USER", None)

    said = await _queued_for(deployment, env)
    assert "fileuser" in said and "for carol" in said
    env["CHAT_TUI_AMQP_URL"] = env_url
    said = await _queued_for(deployment, env)
    assert "envuser" in said and "for carol" in said
    said = await _queued_for(deployment, env, "--amqp-url", flag_url, "--user", "dave")
    assert "flaguser" in said and "for dave" in said
