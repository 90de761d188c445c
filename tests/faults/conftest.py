"""Fixtures of the fault-injection suite: a private RabbitMQ node per test module, a fault
proxy per test, and a ChatWorld of real client subprocesses per test. At the end of the
session the checker's table is printed (sent, delivered, lost, duplicated per scenario).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import checker
from tests.faults.broker_node import BrokerNode, running_node
from tests.faults.fault_proxy import FaultProxy
from tests.faults.world import ChatWorld


@pytest.fixture(scope="module")
def node() -> Iterator[BrokerNode]:
    """A private node of the system's rabbitmq-server, never the shared one on 5672."""
    with running_node() as broker:
        yield broker


@pytest.fixture
def proxy(node: BrokerNode) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(node.port)
    fault_proxy.start()
    yield fault_proxy
    fault_proxy.close()


@pytest.fixture
def world(node: BrokerNode, proxy: FaultProxy, tmp_path: Path) -> Iterator[ChatWorld]:
    if not node.running:  # a scenario before this one left it down
        node.start()
    chat = ChatWorld(node, proxy, tmp_path)
    yield chat
    chat.stop_all()
    proxy.heal()


def _scenario_number(result: checker.ScenarioResult) -> int:
    number = result.scenario.split(" ", 1)[0]
    return int(number) if number.isdigit() else 99


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not checker.RESULTS:
        return
    terminalreporter.section("message accounting (fault scenarios)")
    terminalreporter.write_line(checker.table(sorted(checker.RESULTS, key=_scenario_number)))
    for result in checker.RESULTS:
        if not result.clean or result.notes:
            terminalreporter.write_line(result.details())
