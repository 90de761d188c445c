"""Fixtures of the accounts suite: one private RabbitMQ node with the management plugin
per session (it takes 10-20 s to start), never the shared broker, and a vhost of its own
per test so that one test's accounts and permissions cannot show in another's audit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.accounts.node import ManagedNode


@pytest.fixture(scope="session")
def managed_node() -> Iterator[ManagedNode]:
    """A private node with the management plugin and an `admin` administrator."""
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
