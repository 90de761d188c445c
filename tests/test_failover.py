"""Failover between broker nodes: the URL list in the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_tui.config import SettingsError, load_settings, redact
from tests.test_config import clean_env  # noqa: F401  (a fixture)

# --- the settings ------------------------------------------------------------------


def test_a_toml_list_of_urls_is_read_in_order(clean_env: Path) -> None:  # noqa: F811
    clean_env.write_text(
        'amqp_url = ["amqp://guest:guest@node-a:5672/", "amqp://guest:guest@node-b:5673/"]\n',
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.broker_urls == ["amqp://guest@node-a:5672/", "amqp://guest@node-b:5673/"]
    assert settings.broker_url == "amqp://guest@node-a:5672/"
    assert settings.broker_login == "guest"
    assert settings.broker_password is not None
    assert settings.broker_password.get_secret_value() == "guest"


def test_comma_separated_urls_from_the_environment_and_a_flag(
    clean_env: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAT_TUI_AMQP_URL", "amqp://bob@a/, amqp://bob@b/")
    assert load_settings().broker_urls == ["amqp://bob@a/", "amqp://bob@b/"]
    flagged = load_settings(amqp_url="amqp://bob@c/,amqp://bob@d/,amqp://bob@e/")
    assert flagged.broker_urls == ["amqp://bob@c/", "amqp://bob@d/", "amqp://bob@e/"]
    assert flagged.broker_login == "bob"


def test_one_url_reads_as_before(clean_env: Path) -> None:  # noqa: F811
    settings = load_settings(amqp_url="amqp://alice:pw@host:5672/chat")
    assert settings.broker_urls == ["amqp://alice@host:5672/chat"]
    assert settings.broker_url == "amqp://alice@host:5672/chat"


@pytest.mark.parametrize(
    "urls",
    [
        "amqp://alice@a/,amqp://guest@b/",
        "amqp://alice:one@a/,amqp://alice:two@b/",
    ],
)
def test_urls_that_log_in_differently_are_refused(
    clean_env: Path,  # noqa: F811
    urls: str,
) -> None:
    with pytest.raises(SettingsError, match=r"^amqp_url: the broker URLs log in differently"):
        load_settings(amqp_url=urls)


@pytest.mark.parametrize("urls", ["amqp://a/,http://b/", " , ", "amqp://a/,b:5672"])
def test_a_list_with_a_bad_url_is_refused(clean_env: Path, urls: str) -> None:  # noqa: F811
    with pytest.raises(SettingsError, match=r"^amqp_url: "):
        load_settings(amqp_url=urls)


def test_tls_checks_cover_every_url(clean_env: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(SettingsError, match="no_verify_ssl"):
        load_settings(amqp_url="amqps://a/,amqps://b/?no_verify_ssl=1")
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="does not use TLS"):
        load_settings(amqp_url="amqps://a/,amqp://b/", tls_ca_file=ca)


def test_messages_show_no_password_of_any_url() -> None:
    shown = redact("amqp://bob:first@a/,amqp://bob:second@b/")
    assert shown == "amqp://bob:***@a/, amqp://bob:***@b/"
