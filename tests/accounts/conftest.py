"""Fixtures of the accounts suite: one private RabbitMQ node with the management plugin
per session (it takes 10-20 s to start), never the shared broker, and a vhost of its own
per test so that one test's accounts and permissions cannot show in another's audit."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.accounts.node import ManagedNode

HERE = Path(__file__).resolve().parent


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
