"""Fixtures of the accounts suite: one private RabbitMQ node with the management plugin
per session (it takes 10-20 s to start), never the shared broker, and a vhost of its own
per test so that one test's accounts and permissions cannot show in another's audit.
Tests that share their accounts (the attacks, the flows) share one provisioned vhost per
module instead, and the attacks they attempt are printed as a table at the end."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chat_tui.config import CONFIG_FILE_ENV
from tests.accounts import attack_table
from tests.accounts.attack_table import AttackLog, AttackRow
from tests.accounts.node import ManagedNode
from tests.accounts.provisioning import AccountsDeployment, Admin

HERE = Path(__file__).resolve().parent
ATTACKS: list[AttackRow] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on the managed node needs RabbitMQ as much as one on the shared broker:
    mark it `broker`, so that `-m "not broker"` (make test-fast) leaves it out."""
    for item in items:
        if item.path.is_relative_to(HERE) and "managed_node" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def managed_node() -> Iterator[ManagedNode]:
    """A private node with the management plugin and an `admin` administrator."""
    if os.environ.get("CHAT_TUI_TESTS_WITHOUT_BROKER"):
        pytest.fail("this test needs a broker, but it is not marked broker")
    node = ManagedNode()
    try:
        node.start()
        yield node
    finally:
        node.destroy()


@pytest.fixture
def vhost(managed_node: ManagedNode) -> Iterator[str]:
    """A fresh vhost on the managed node, deleted afterwards with all it holds."""
    name = f"v{uuid.uuid4().hex[:10]}"
    managed_node.add_vhost(name)
    yield name
    managed_node.delete_vhost(name)


@pytest.fixture(scope="module")
def provisioned(
    managed_node: ManagedNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccountsDeployment]:
    """A vhost of the module's own after `chat-tui admin init`; its tests add accounts.
    Users' caches stay for the module, as a user's cache stays between runs."""
    name = f"v{uuid.uuid4().hex[:10]}"
    managed_node.add_vhost(name)
    data_dir = tmp_path_factory.mktemp("accounts")
    admin = Admin(managed_node, name, data_dir)
    with pytest.MonkeyPatch.context() as env:
        # Keep a developer's own config.toml out: accounts mode checks who can read it.
        env.setenv(CONFIG_FILE_ENV, str(data_dir / "no-config.toml"))
        admin.ok("init")
        yield AccountsDeployment(admin)
    for user in admin.accounts:
        managed_node.delete_user(user)
    managed_node.delete_vhost(name)


@pytest.fixture
async def accounts(provisioned: AccountsDeployment) -> AsyncIterator[AccountsDeployment]:
    """The module's provisioned vhost; the test's clients and logins stop after it."""
    yield provisioned
    await provisioned.stop_all()


@pytest.fixture
def attacks(request: pytest.FixtureRequest) -> AttackLog:
    item = request.node
    assert isinstance(item, pytest.Item)
    return AttackLog(item)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        ATTACKS.extend(attack_table.rows_of(report))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ATTACKS:
        return
    terminalreporter.section("attacks of issue 10, by one account against another")
    terminalreporter.write_line(attack_table.table(ATTACKS))
