"""The broker password stays secret (issue 10): it may come from the URL, from
CHAT_TUI_PASSWORD or from `password_file`; it never shows in what chat-tui prints; a
file that holds it and that others can read is refused, as ssh refuses such a key.
No broker is needed."""

from __future__ import annotations

import argparse
import os
import socket
import traceback
from pathlib import Path

import pytest
from pydantic import SecretStr

from chat_tui.cli.main import build_parser
from chat_tui.config import SettingsError, connection_url, load_settings
from chat_tui.protocol.names import Names
from chat_tui.transport.connection import Transport
from chat_tui.transport.errors import BrokerUnreachable

SECRET = "s3cret-Pa55"


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CHAT_TUI_* variable from the outside; the config file points into tmp_path."""
    for name in list(os.environ):
        if name.startswith("CHAT_TUI_"):
            monkeypatch.delenv(name)
    path = tmp_path / "config.toml"
    monkeypatch.setenv("CHAT_TUI_CONFIG_FILE", str(path))
    return path


def _private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _refusal(**flags: object) -> str:
    with pytest.raises(SettingsError) as refused:
        load_settings(**flags)
    assert SECRET not in str(refused.value)
    return str(refused.value)


def test_a_password_in_the_url_is_used_but_kept_out_of_the_url_shown(config: Path) -> None:
    settings = load_settings(user="alice", amqp_url=f"amqp://alice:{SECRET}@host:5672/chat")
    assert settings.broker_url == "amqp://alice@host:5672/chat"
    assert settings.broker_password == SecretStr(SECRET)
    assert connection_url(settings.broker_url, settings.broker_password) == (
        f"amqp://alice:{SECRET}@host:5672/chat"
    )
    # A traceback or a log line that shows the settings shows no URL, so no password.
    assert SECRET not in repr(settings) and SECRET not in str(settings)


def test_chat_tui_password_wins_over_the_urls_and_never_shows(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_TUI_PASSWORD", SECRET)
    settings = load_settings(user="alice", amqp_url="amqp://alice:old@host/")
    assert settings.broker_password == SecretStr(SECRET)
    assert settings.broker_url == "amqp://alice@host/"
    assert SECRET not in repr(settings) and SECRET not in str(settings)


def test_a_password_file_is_read_without_its_trailing_newline(config: Path, tmp_path: Path) -> None:
    secret = _private_file(tmp_path / "password", f"{SECRET}\n")
    settings = load_settings(user="alice", amqp_url="amqp://alice@host/", password_file=secret)
    assert settings.broker_password == SecretStr(SECRET)
    assert connection_url(settings.broker_url, settings.broker_password).startswith(
        f"amqp://alice:{SECRET}@"
    )


def test_a_password_file_others_can_read_is_refused(config: Path, tmp_path: Path) -> None:
    secret = _private_file(tmp_path / "password", SECRET, mode=0o644)
    refusal = _refusal(user="alice", amqp_url="amqp://alice@host/", password_file=secret)
    assert refusal == (
        f"password_file: {secret} holds a password and other users can read it: "
        f"run 'chmod 600 {secret}', and change the password if others may have seen it"
    )


def test_a_missing_password_file_is_named(config: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert _refusal(user="alice", password_file=missing) == (
        f"password_file: {missing} is not a file"
    )


def test_two_passwords_besides_the_url_are_refused_rather_than_one_picked(
    config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHAT_TUI_PASSWORD", SECRET)
    secret = _private_file(tmp_path / "password", SECRET)
    assert _refusal(user="alice", password_file=secret) == (
        "password: give either password or password_file, not both"
    )


@pytest.mark.parametrize(
    "holding",
    [f'amqp_url = "amqp://alice:{SECRET}@host/"\n', f'password = "{SECRET}"\n'],
    ids=["in amqp_url", "as password"],
)
def test_a_config_file_with_a_password_that_others_can_read_is_refused(
    config: Path, holding: str
) -> None:
    login = "" if holding.startswith("amqp_url") else 'amqp_url = "amqp://alice@host/"\n'
    _private_file(config, f'user = "alice"\n{login}{holding}', 0o640)
    assert _refusal() == (
        f"config file: {config} holds a password and other users can read it: "
        f"run 'chmod 600 {config}', and change the password if others may have seen it"
    )
    config.chmod(0o600)
    assert load_settings().broker_password == SecretStr(SECRET)


def test_the_shared_login_of_open_mode_may_sit_in_a_readable_config_file(config: Path) -> None:
    # Everyone of an open deployment has that login; it is nobody's own identity.
    _private_file(config, 'user = "carol"\namqp_url = "amqp://guest:guest@host/"\n', 0o644)
    settings = load_settings()
    assert not settings.accounts_mode
    assert settings.broker_password == SecretStr("guest")


def _options_taking_a_value(parser: argparse.ArgumentParser) -> set[str]:
    options = {
        option
        for action in parser._actions
        if action.nargs != 0
        for option in action.option_strings
    }
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                options |= _options_taking_a_value(child)
    return options


def test_no_command_line_flag_takes_a_password() -> None:
    # A password on the command line shows in the process list of every user;
    # `--password-stdin` (of chat-tui admin) is a switch and takes none.
    options = _options_taking_a_value(build_parser())
    assert "--amqp-url" in options
    assert not {option for option in options if "pass" in option}, options


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_the_transport_keeps_and_shows_no_password() -> None:
    url = f"amqp://alice:{SECRET}@127.0.0.1:{_closed_port()}/"
    transport = Transport(url, Names("t"), "alice")
    assert SECRET not in transport.url
    assert transport.login == "alice"
    with pytest.raises(BrokerUnreachable) as unreachable:
        await transport.connect(connect_timeout=2)
    assert "alice@127.0.0.1" in str(unreachable.value)
    assert SECRET not in str(unreachable.value)


def test_no_verify_ssl_is_refused_unless_insecure_on_purpose(config: Path) -> None:
    url = "amqps://alice@host/?no_verify_ssl=1"
    assert _refusal(user="alice", amqp_url=url) == (
        "amqp_url: no_verify_ssl turns off the check of the broker's certificate; give "
        "the CA that signed it with tls_ca_file, or set tls_insecure = true to run "
        "without the check on purpose"
    )
    assert load_settings(user="alice", amqp_url=url, tls_insecure=True).tls_insecure


def test_a_ca_file_without_tls_is_refused(config: Path, tmp_path: Path) -> None:
    ca = _private_file(tmp_path / "ca.pem", "not read here", 0o644)
    assert _refusal(user="alice", amqp_url="amqp://alice@host/", tls_ca_file=ca) == (
        "tls_ca_file: set, but amqp_url does not use TLS (amqps://)"
    )


def test_a_settings_error_does_not_carry_the_password_in_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A check of the whole settings: pydantic's error holds every input, the password too.
    monkeypatch.setenv("CHAT_TUI_PASSWORD", "zq9")
    with pytest.raises(SettingsError) as refused:
        load_settings(amqp_url="amqps://alice@host/?no_verify_ssl=1")
    shown = "".join(traceback.format_exception(refused.value))
    assert "zq9" not in shown
