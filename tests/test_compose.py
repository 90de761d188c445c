"""The Docker files, checked without Docker (none runs here): each compose file parses,
and every name in them is one the code and the other files agree on. The archive
service's environment, interpolated as compose would with a sample `.env`, loads as the
archive's Settings in accounts mode; its hosts are services of the file; the TLS overlay
reaches the port and the CA that the broker's TLS config uses; the image runs the
project's own command as a user that is not root."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from yarl import URL

from chat_tui.cli.main import build_parser
from chat_tui.config import CONFIG_FILE_ENV, Settings
from chat_tui.core.archive_worker import archive_accounts_mode
from chat_tui.protocol.names import Names
from chat_tui.protocol.permissions import archive_login

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ENV = {
    "RABBITMQ_DEFAULT_USER": "admin",
    "RABBITMQ_DEFAULT_PASS": "admin-secret",
    "RABBITMQ_ERLANG_COOKIE": "cookie",
    "POSTGRES_PASSWORD": "postgres-secret",
    "CHAT_TUI_ARCHIVE_PASSWORD": "archive-secret",
}
"""The `.env` that README's "Deploying for a team" and "The archive" ask for."""

_VARIABLE = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")


def interpolated(value: str, env: dict[str, str]) -> str:
    """`${VAR}`, `${VAR:-default}` and `${VAR:?error}` as compose expands them."""

    def expand(match: re.Match[str]) -> str:
        name, how, rest = match.groups()
        if env.get(name):
            return env[name]
        if how == ":?":
            raise LookupError(f"{name}: {rest}")
        return rest if how == ":-" else ""

    return _VARIABLE.sub(expand, value)


def compose(*files: str) -> dict[str, Any]:
    """The files merged the way `docker compose -f A -f B` merges services: mappings
    key by key, and lists (volumes, ports) appended."""
    merged: dict[str, Any] = {}
    for name in files:
        loaded = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
        assert isinstance(loaded, dict), name
        _merge(merged, loaded)
    return merged


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] = [*into[key], *value]
        else:
            into[key] = value


def environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    return {key: interpolated(str(value), env) for key, value in service["environment"].items()}


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CHAT_TUI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "none.toml"))


@pytest.mark.parametrize("name", ["compose.yaml", "compose.tls.yaml", "compose.dev.yaml"])
def test_every_compose_file_parses_as_yaml(name: str) -> None:
    assert isinstance(compose(name)["services"], dict)


def test_the_archive_service_loads_as_the_archives_settings_in_accounts_mode(
    no_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose("compose.yaml")["services"]
    archive = services["archive"]
    assert archive["build"] == "."
    assert build_parser().parse_args(archive["command"]).command == "archive"
    env = environment(archive, SAMPLE_ENV)
    for key, value in env.items():
        if key != "PGPASSWORD":  # read by asyncpg, not by Settings
            assert key.removeprefix("CHAT_TUI_").lower() in Settings.model_fields, key
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert archive_accounts_mode(settings)
    assert settings.broker_login == archive_login(Names(settings.namespace))
    assert settings.broker_password is not None
    assert settings.broker_password.get_secret_value() == "archive-secret"
    assert URL(settings.broker_url).host in services

    database = URL(settings.archive_database)
    postgres = services["postgres"]
    postgres_env = environment(postgres, SAMPLE_ENV)
    assert database.scheme == "postgresql" and database.password is None
    assert (database.host, database.port) == ("postgres", 5432)
    assert (database.user, database.path) == (
        postgres_env["POSTGRES_USER"],
        f"/{postgres_env['POSTGRES_DB']}",
    )
    assert env["PGPASSWORD"] == postgres_env["POSTGRES_PASSWORD"]
    assert archive["depends_on"] == {
        "rabbitmq": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    assert "healthcheck" in postgres and "healthcheck" in services["rabbitmq"]


def test_every_volume_a_service_names_is_declared() -> None:
    merged = compose("compose.yaml")
    declared = set(merged["volumes"])
    for name, service in merged["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                continue  # a file of this repository, checked where it matters
            assert source in declared, f"{name}: {source}"
    assert "postgres-data" in declared


def test_the_archive_needs_its_passwords_in_env_and_says_where_to_read(no_config: None) -> None:
    archive = compose("compose.yaml")["services"]["archive"]
    for missing in ("CHAT_TUI_ARCHIVE_PASSWORD", "POSTGRES_PASSWORD"):
        partial = {key: value for key, value in SAMPLE_ENV.items() if key != missing}
        with pytest.raises(LookupError, match=rf"{missing}: write .env first \(README"):
            environment(archive, partial)


def test_a_cluster_archive_takes_every_node_and_quorum_queues(
    no_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose("compose.yaml")["services"]
    nodes = [name for name, service in services.items() if name.startswith("rabbitmq")]
    urls = ",".join(f"amqp://chat.archive@{node}:5672/" for node in nodes)
    env = {**SAMPLE_ENV, "CHAT_TUI_ARCHIVE_AMQP_URL": urls, "CHAT_TUI_QUEUE_TYPE": "quorum"}
    for key, value in environment(services["archive"], env).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert (
        [URL(url).host for url in settings.broker_urls]
        == nodes
        == [
            "rabbitmq",
            "rabbitmq-2",
            "rabbitmq-3",
        ]
    )
    assert settings.queue_type == "quorum"
    assert archive_accounts_mode(settings)


def test_with_tls_the_archive_reaches_the_brokers_tls_port_with_its_ca() -> None:
    merged = compose("compose.yaml", "compose.tls.yaml")["services"]
    archive, rabbitmq = merged["archive"], merged["rabbitmq"]
    env = environment(archive, SAMPLE_ENV)
    url = URL(env["CHAT_TUI_AMQP_URL"])
    tls_conf = (ROOT / "deploy/rabbitmq/tls.conf").read_text(encoding="utf-8")
    (tls_port,) = re.findall(r"^listeners\.ssl\.default = (\d+)$", tls_conf, re.MULTILINE)
    assert (url.scheme, url.host, url.port, url.user) == (
        "amqps",
        "rabbitmq",
        int(tls_port),
        "chat.archive",
    )
    assert f"{tls_port}:{tls_port}" in rabbitmq["ports"]
    assert f"./deploy/tls/ca.pem:{env['CHAT_TUI_TLS_CA_FILE']}:ro" in archive["volumes"]
    assert "./deploy/tls:/etc/rabbitmq/tls:ro" in rabbitmq["volumes"]


def test_the_dev_broker_runs_no_archive_of_its_own() -> None:
    assert set(compose("compose.dev.yaml")["services"]) == {"rabbitmq"}


def test_the_image_runs_the_projects_command_as_a_user_that_is_not_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    instructions = [
        line.split(None, 1) for line in dockerfile.splitlines() if line and line[0].isupper()
    ]
    first = {word: rest for word, rest in reversed(instructions)}
    last = {word: rest for word, rest in instructions}
    assert first["FROM"] == "python:3.11-slim"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert last["ENTRYPOINT"] == '["chat-tui"]' and "chat-tui" in scripts
    assert last["USER"] not in ("root", "0")
    sources = {
        source
        for word, rest in instructions
        if word == "COPY"
        for source in rest.split()[:-1]  # the last one is the destination
    }
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    assert sources <= allowed, sources - allowed
    assert all((ROOT / source).exists() for source in sources)


def test_the_compose_cluster_pauses_a_cut_off_node_as_the_partition_scenario_does() -> None:
    # tests/cluster/test_partition.py proves the setting; compose's nodes must carry it.
    conf = (ROOT / "deploy" / "rabbitmq" / "cluster.conf").read_text()
    settings = [line.split("=", 1) for line in conf.splitlines() if "=" in line]
    handling = {key.strip(): value.strip() for key, value in settings}
    assert handling.get("cluster_partition_handling") == "pause_minority"
