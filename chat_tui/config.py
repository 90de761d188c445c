"""Typed settings: command-line flags, then CHAT_TUI_* variables, a TOML file, defaults."""

from __future__ import annotations

import getpass
import os
import re
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from yarl import URL

from chat_tui.protocol.ids import validate_id
from chat_tui.protocol.names import validate_namespace

APP_NAME = "chat-tui"
CONFIG_FILE_ENV = "CHAT_TUI_CONFIG_FILE"


def redact(url: str) -> str:
    """The URL without its password, for messages shown to people."""
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


def config_file() -> Path:
    """The TOML config file; CHAT_TUI_CONFIG_FILE points elsewhere (tests use that)."""
    override = os.environ.get(CONFIG_FILE_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def data_directory() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def default_user() -> str:
    """The login name, folded to the ID alphabet so that it usually validates as is."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "user"
    folded = re.sub(r"[^a-z0-9_-]", "-", login.lower()).lstrip("_-")[:32]
    return folded or "user"


class Settings(BaseSettings):
    """Everything a chat-tui client needs to know to start."""

    model_config = SettingsConfigDict(env_prefix="CHAT_TUI_", extra="ignore")

    user: str = Field(default_factory=default_user)
    """The user ID this client acts as."""
    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    """The broker to connect to."""
    namespace: str = "chat"
    """Prefix of every exchange and queue, so deployments and tests can share one broker."""
    data_dir: Path = Field(default_factory=data_directory)
    """Where the per-user SQLite cache lives."""
    read_receipts: bool = True
    """Whether to tell senders that their messages were read."""
    heartbeat: int = 10
    """AMQP heartbeat in seconds: how quickly a stalled broker is noticed."""
    confirm_timeout: float = 10.0
    """Seconds to wait for a publisher confirm before the publish is retried."""
    reconnect_interval: float = 2.0
    """Seconds between reconnection attempts."""
    theme: str = "textual-dark"
    """The Textual theme of the full-screen app."""

    @field_validator("user")
    @classmethod
    def _user_is_an_id(cls, value: str) -> str:
        return validate_id(value, "user ID")

    @field_validator("namespace")
    @classmethod
    def _namespace_is_safe(cls, value: str) -> str:
        return validate_namespace(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The first source wins: flags (passed as init kwargs), env, then the TOML file.
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return (init_settings, env_settings, toml)

    @property
    def database_path(self) -> Path:
        return self.data_dir / f"{self.namespace}-{self.user}.sqlite3"

    @property
    def broker_login(self) -> str:
        """The username the client logs in to the broker with (AMQP's default: guest)."""
        return URL(self.amqp_url).user or "guest"

    @property
    def accounts_mode(self) -> bool:
        """A deployment with one broker account per user: the login is the user ID.
        Otherwise the login is shared (open mode) and senders are not verified."""
        return self.broker_login == self.user


class SettingsError(ValueError):
    """A setting that cannot be used. The text is `field: what is wrong`, ready to show."""


def _refusal(refused: ValidationError) -> SettingsError:
    error = refused.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    # A validator's ValueError is the message itself; pydantic's own checks say theirs.
    cause = error.get("ctx", {}).get("error")
    return SettingsError(f"{field}: {cause if isinstance(cause, ValueError) else error['msg']}")


def load_settings(**overrides: Any) -> Settings:
    """Build Settings; `overrides` are command-line flags, and None means "not given".
    Raises `SettingsError` for the first setting that cannot be used."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise _refusal(exc) from exc
