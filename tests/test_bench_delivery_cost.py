"""`python -m bench.delivery_cost` in small: every delivery arrives, and its CPU is
split between the event loop and the SQLite threads."""

from __future__ import annotations

import pytest

from bench.delivery_cost import measure
from chat_tui.config import CONFIG_FILE_ENV


async def test_the_cost_of_a_delivery_is_measured_over_every_delivery(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deployment points CHAT_TUI_CONFIG_FILE at its own folder; give it back afterwards.
    monkeypatch.setenv(CONFIG_FILE_ENV, "unset-by-the-cost-test.toml")
    cost = await measure(users=3, messages=12, rate=40.0, amqp_url=amqp_url)
    assert cost.expected == 24
    assert cost.deliveries == cost.expected, cost.line()
    # /proc counts in ticks of 10 ms: a short run may give one side none.
    assert cost.loop + cost.threads > 0
    assert cost.user + cost.system > 0
    assert "CPU per delivery" in cost.line()
