"""A bad setting is one clean line, `field: what is wrong`, built by the settings
themselves; the namespace rule is the protocol's, whoever checks it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chat_tui.cli.main import main
from chat_tui.config import load_settings
from chat_tui.protocol.names import Names


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CHAT_TUI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CHAT_TUI_CONFIG_FILE", str(tmp_path / "config.toml"))


def _refusal(**flags: object) -> str:
    with pytest.raises(ValueError) as refused:
        load_settings(**flags)
    return str(refused.value)


def test_a_bad_setting_is_one_line_naming_the_field() -> None:
    assert _refusal(user="Not Valid") == (
        "user: invalid user ID 'Not Valid': use 1-32 characters of a-z, 0-9, '_' and '-', "
        "starting with a letter or digit"
    )


def test_a_value_the_type_refuses_is_named_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_TUI_HEARTBEAT", "often")
    refusal = _refusal()
    assert refusal.startswith("heartbeat: "), refusal
    assert "\n" not in refusal


def test_the_settings_refuse_a_namespace_as_the_protocol_does() -> None:
    with pytest.raises(ValueError) as by_protocol:
        Names("bad namespace!")
    assert _refusal(namespace="bad namespace!") == f"namespace: {by_protocol.value}"


def test_a_reconnect_interval_that_is_not_positive_is_refused() -> None:
    refusal = _refusal(reconnect_interval=0)
    assert refusal.startswith("reconnect_interval: "), refusal
    assert "greater than 0" in refusal


def test_a_password_on_the_command_line_is_warned_about(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["users", "--amqp-url", "amqp://alice:pw@127.0.0.1:1/", "--user", "Bad"]) == 1
    err = capsys.readouterr().err
    assert "the password in --amqp-url shows in the process list" in err
    assert "pw@" not in err


def test_a_password_in_the_admin_url_on_the_command_line_is_warned_about(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for admin_url in ("http://admin:s3cr3t@127.0.0.1:1/", "admin:s3cr3t@127.0.0.1:1/"):
        assert main(["admin", "check", "--admin-url", admin_url]) == 1
        err = capsys.readouterr().err
        assert "the password in --admin-url shows in the process list" in err, admin_url
        assert "CHAT_TUI_ADMIN_URL" in err
        assert "s3cr3t" not in err


def test_an_admin_url_that_is_not_http_is_refused_without_echoing_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a scheme yarl finds no password to redact; without a host it cannot parse.
    for admin_url in ("admin:s3cr3t@localhost:15672/", "http://admin:s3cr3t@:15672/"):
        monkeypatch.setenv("CHAT_TUI_ADMIN_URL", admin_url)
        assert main(["admin", "check"]) == 1
        err = capsys.readouterr().err
        assert err == (
            "chat-tui: error: the admin URL (--admin-url or CHAT_TUI_ADMIN_URL, not shown "
            "since it may hold a password) is not http(s)://USER:PASSWORD@HOST:PORT/\n"
        ), admin_url
