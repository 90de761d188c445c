"""Metric 2: sustained ingest, messages per second stored and acked while being sent.

A sender in another process publishes N valid group messages as fast as confirms allow.
chat-tui: bob's client, a member of the group, stores, shows and acks them.
Baseline: a plain aio-pika consumer of a queue like bob's inbox, acking each message.
The rate is N over the time from the sender's start to the last ack.
"""

from __future__ import annotations

from bench.deployment import BenchDeployment
from bench.probe import AckWatch, ProbeSink, watch_acks
from bench.report import Goal, Result
from bench.sender import SenderProcess
from bench.sizes import Sizes

GROUP = "ingest"
BASELINE_GROUP = "ingest-base"
SENDER = "carol"


async def chat_tui_rate(deployment: BenchDeployment, count: int) -> tuple[float, float, float]:
    """(acked per second, sent per second, seconds from the last confirm to the last ack)."""
    bob = await deployment.client("bob", ProbeSink())
    watch = AckWatch(count)
    watch_acks(bob, watch)
    await bob.create_group(GROUP)
    sender = SenderProcess(deployment.amqp_url, deployment.namespace, GROUP, SENDER, count)
    started, send_seconds = await sender.run_until(watch.done.wait, 600)
    await deployment.stop_client(bob)
    lag = watch.finished_at - started - send_seconds
    return count / (watch.finished_at - started), count / send_seconds, lag


async def plain_rate(deployment: BenchDeployment, count: int) -> tuple[float, float, float]:
    connection = await deployment.connect()
    try:
        consumer = await deployment.plain_consumer(connection, "ingest", [BASELINE_GROUP], count)
        sender = SenderProcess(
            deployment.amqp_url, deployment.namespace, BASELINE_GROUP, SENDER, count
        )
        started, send_seconds = await sender.run_until(consumer.done.wait, 600)
        lag = consumer.finished_at - started - send_seconds
        return count / (consumer.finished_at - started), count / send_seconds, lag
    finally:
        await connection.close()


async def measure(deployment: BenchDeployment, sizes: Sizes) -> list[Result]:
    count = sizes.ingest_messages
    # The sender's receipts queue must exist, or bob's delivered receipts bounce.
    await deployment.register(SENDER)
    chat, chat_sent, chat_lag = await chat_tui_rate(deployment, count)
    plain, plain_sent, plain_lag = await plain_rate(deployment, count)
    note = (
        f"{count:,} group messages; the sender published at {chat_sent:,.0f}/s "
        f"(chat-tui run) and {plain_sent:,.0f}/s (baseline run); last ack "
        f"{chat_lag * 1000:.0f} ms (chat-tui) and {plain_lag * 1000:.0f} ms (plain) "
        "after the sender's last confirm"
    )
    return [Result("ingest", chat, "msg/s", plain, Goal("ratio", ">=", 1.0), note=note)]
