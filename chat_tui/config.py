"""Typed settings: command-line flags, then CHAT_TUI_* variables, a TOML file, defaults."""

from __future__ import annotations

import getpass
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal, Self

import platformdirs
from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
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
    """The URL (or comma-separated URLs) without a password, for messages shown to people."""
    if "," in url:
        return ", ".join(redact(each) for each in split_urls(url))
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


def login_of(url: str) -> str:
    """The username a URL logs in with (AMQP's default: guest)."""
    return URL(url).user or "guest"


def without_password(url: str) -> str:
    """The URL with no password in it at all: what the transport keeps and shows."""
    parsed = URL(url)
    return str(parsed.with_password(None)) if parsed.password else url


def connection_url(url: str, password: SecretStr | None) -> str:
    """The URL the library logs in with: the one place a password joins the URL. Hand
    the result to aio-pika only; never keep, log or show it."""
    if password is None:
        return url
    parsed = URL(url)
    return str(parsed.with_user(parsed.user or "guest").with_password(password.get_secret_value()))


def split_urls(value: str) -> list[str]:
    """The broker URLs in `amqp_url`: one, or several separated by commas."""
    return [part.strip() for part in value.split(",") if part.strip()]


def node_of(url: str) -> str:
    """The `host:port` a URL connects to: which node of a cluster, fit to show."""
    parsed = URL(url)
    port = parsed.port or (5671 if parsed.scheme == "amqps" else 5672)
    return f"{parsed.host}:{port}"


def readable_by_others(path: Path) -> bool:
    """Whether anyone but the owner may read or write the file (ssh's rule for keys)."""
    return bool(stat.S_IMODE(path.stat().st_mode) & 0o077)


def _secret_file_refusal(path: Path, what: str) -> str:
    return (
        f"{path} holds {what} and other users can read it: "
        f"run 'chmod 600 {path}', and change the password if others may have seen it"
    )


def _toml_holds_password(path: Path) -> bool:
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # the settings source reports what it cannot read
    urls = values.get("amqp_url")
    listed = urls if isinstance(urls, list) else [urls]
    return "password" in values or any(
        isinstance(url, str) and URL(url).password is not None for url in listed
    )


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
    amqp_url: str = Field(default="amqp://guest:guest@localhost:5672/", repr=False)
    """The broker to connect to, or the nodes of a cluster: a list in the TOML file,
    comma-separated in a flag or CHAT_TUI_AMQP_URL (kept here comma-separated; see
    `broker_urls`). Its password is better kept in `password_file`; left out of the
    settings' repr, so that no traceback or log shows it."""
    password: SecretStr | None = None
    """The broker password (CHAT_TUI_PASSWORD); it wins over one in `amqp_url`."""
    password_file: Path | None = None
    """A file that holds the broker password, readable by its owner only."""
    tls_ca_file: Path | None = None
    """The CA certificate (PEM) that signed the broker's, for `amqps://` URLs."""
    tls_insecure: bool = False
    """Allow `no_verify_ssl` in `amqp_url`: TLS without checking whom we talk to."""
    namespace: str = "chat"
    """Prefix of every exchange and queue, so deployments and tests can share one broker."""
    queue_type: Literal["classic", "quorum"] = "classic"
    """How the inboxes, receipts queues and the dead-letter queue are declared: `classic`
    on one node, `quorum` on a cluster (replicated, they survive a node). Chosen when a
    deployment is set up: the broker refuses to redeclare a queue as the other type."""
    data_dir: Path = Field(default_factory=data_directory)
    """Where the per-user SQLite cache lives."""
    read_receipts: bool = True
    """Whether to tell senders that their messages were read."""
    heartbeat: int = 10
    """AMQP heartbeat in seconds: how quickly a stalled broker is noticed."""
    confirm_timeout: float = 10.0
    """Seconds to wait for a publisher confirm before the publish is retried."""
    reconnect_interval: float = Field(default=2.0, gt=0)
    """Seconds between reconnection attempts."""
    archive_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for the archive to answer a history or search request."""
    theme: str = "textual-dark"
    """The Textual theme of the full-screen app."""
    archive_db: str | None = None
    """Where `chat-tui archive` keeps every message: `postgresql://...` (what several
    workers on several machines share), or a SQLite file; left out, a SQLite file in
    `data_dir` (`archive_database`)."""
    archive_retention_days: int | None = None
    """How long the archive keeps a message, in days; left out, for ever."""

    @field_validator("amqp_url", mode="before")
    @classmethod
    def _urls_are_one_login(cls, value: object) -> object:
        if isinstance(value, list):
            if not all(isinstance(url, str) for url in value):
                raise ValueError("a list of amqp:// or amqps:// URLs is expected")
            value = ",".join(value)
        if not isinstance(value, str):
            return value  # pydantic says what type it wanted
        urls = split_urls(value)
        if not urls:
            raise ValueError("no broker URL given")
        for url in urls:
            if URL(url).scheme not in ("amqp", "amqps") or not URL(url).host:
                raise ValueError(f"{redact(url)} is not an amqp:// or amqps:// URL")
        # The login decides the mode (accounts or open) and is the user_id of every
        # publish, so the nodes of one deployment cannot differ in it.
        logins = {login_of(url) for url in urls}
        passwords = {URL(url).password for url in urls} - {None}
        if len(logins) > 1 or len(passwords) > 1:
            raise ValueError(
                "the broker URLs log in differently (users "
                f"{', '.join(sorted(logins))}): every node of a deployment takes the "
                "same login; give the same user in each URL, and the password once "
                "(password_file or CHAT_TUI_PASSWORD)"
            )
        return ",".join(urls)

    @field_validator("archive_db")
    @classmethod
    def _archive_db_is_usable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("empty: give a postgresql:// URL or a SQLite file path")
        if "://" in value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"{redact(value)}: only postgresql:// URLs or SQLite file paths are understood"
            )
        return value

    @field_validator("archive_retention_days")
    @classmethod
    def _retention_is_positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(
                f"{value} days would purge every message: give at least 1, or leave the "
                "setting out to keep everything"
            )
        return value

    @field_validator("user")
    @classmethod
    def _user_is_an_id(cls, value: str) -> str:
        return validate_id(value, "user ID")

    @field_validator("namespace")
    @classmethod
    def _namespace_is_safe(cls, value: str) -> str:
        return validate_namespace(value)

    _file_password: SecretStr | None = PrivateAttr(default=None)

    @field_validator("password_file")
    @classmethod
    def _password_file_is_private(cls, path: Path | None) -> Path | None:
        if path is None:
            return None
        if not path.is_file():
            raise ValueError(f"{path} is not a file")
        if readable_by_others(path):
            raise ValueError(_secret_file_refusal(path, "a password"))
        return path

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_file_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} is not a file")
        return path

    @model_validator(mode="after")
    def _broker_access_is_safe(self) -> Self:
        urls = [URL(url) for url in self.broker_urls]
        if self.password is not None and self.password_file is not None:
            raise ValueError("password: give either password or password_file, not both")
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problem = f"cannot read {self.password_file}: {exc}"
                raise ValueError(f"password_file: {problem}") from None
            # Editors and `echo` end the file with a newline; it is not part of the password.
            self._file_password = SecretStr(text.rstrip("\r\n"))
        if (
            any(url.query.get("no_verify_ssl", "0") != "0" for url in urls)
            and not self.tls_insecure
        ):
            raise ValueError(
                "amqp_url: no_verify_ssl turns off the check of the broker's certificate; "
                "give the CA that signed it with tls_ca_file, or set tls_insecure = true "
                "to run without the check on purpose"
            )
        if self.tls_ca_file is not None and any(url.scheme != "amqps" for url in urls):
            raise ValueError("tls_ca_file: set, but amqp_url does not use TLS (amqps://)")
        # In open mode the password is the login everyone shares; in accounts mode it is
        # this one person's identity, and a readable file gives it away.
        config = config_file()
        if (
            self.accounts_mode
            and config.is_file()
            and readable_by_others(config)
            and _toml_holds_password(config)
        ):
            raise ValueError(f"config file: {_secret_file_refusal(config, 'a password')}")
        return self

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
    def archive_database(self) -> str:
        """`archive_db`, or the archive's SQLite file in `data_dir`."""
        return self.archive_db or str(self.data_dir / f"{self.namespace}-archive.sqlite3")

    @property
    def broker_urls(self) -> list[str]:
        """Every URL of `amqp_url`, in the order the client tries them, with no password."""
        return [without_password(url) for url in split_urls(self.amqp_url)]

    @property
    def broker_login(self) -> str:
        """The username the client logs in to the broker with (AMQP's default: guest);
        the same in every URL."""
        return login_of(split_urls(self.amqp_url)[0])

    @property
    def broker_url(self) -> str:
        """The first URL of `amqp_url` without its password."""
        return self.broker_urls[0]

    @property
    def broker_password(self) -> SecretStr | None:
        """The password from `password`, `password_file` or `amqp_url`, in that order."""
        if self.password is not None:
            return self.password
        if self._file_password is not None:
            return self._file_password
        in_url = URL(split_urls(self.amqp_url)[0]).password
        return SecretStr(in_url) if in_url is not None else None

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
    text = str(cause) if isinstance(cause, ValueError) else error["msg"]
    # The checks across fields name their field themselves.
    return SettingsError(f"{field}: {text}" if field else text)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings; `overrides` are command-line flags, and None means "not given".
    Raises `SettingsError` for the first setting that cannot be used."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        # Not chained: the ValidationError holds the input, passwords included.
        raise _refusal(exc) from None
