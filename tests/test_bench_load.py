"""`python -m bench.load` in small: simulated users, each a real ChatClient in one of two
worker processes, on the shared broker under a namespace of their own; every message is
accounted for by the fault suite's checker."""

from __future__ import annotations

import math

import pytest

from bench.load.brokers import GivenBroker
from bench.load.plan import LoadPlan
from bench.load.run import LoadOptions, run
from chat_tui.config import CONFIG_FILE_ENV


def test_simulated_users_get_every_message_once_and_the_latency_is_measured(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run points CHAT_TUI_CONFIG_FILE at its own folder; give it back afterwards.
    monkeypatch.setenv(CONFIG_FILE_ENV, "unset-by-the-load-test.toml")
    plan = LoadPlan(users=20, groups=4, workers=2, dm_share=0.3)
    options = LoadOptions(plan, "classic", rates=[20.0], step_seconds=3.0, idle_seconds=0.5)

    report = run(options, GivenBroker(amqp_url))

    [step] = report.steps
    assert step.sent >= 55, step.line()
    assert step.expected > step.sent  # group messages reach several members
    assert step.delivered == step.expected, step.line()
    assert 0 < step.p50 <= step.p99 < math.inf
    assert step.deliveries_per_second > 0
    assert report.accounting is not None
    assert report.accounting.expected == step.expected
    assert report.accounting.delivered == step.expected
    assert report.accounting.lost == [] and report.accounting.duplicated == []
    assert report.accounting.clean, report.accounting.details()
    assert len(report.worker_rss) == 2 and all(rss > 0 for rss in report.worker_rss)
