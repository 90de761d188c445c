"""Every publish carries the AMQP `user_id` of the broker login (issue 10): RabbitMQ
refuses any other, so receivers in accounts mode can trust it. Read with plain aio-pika."""

from __future__ import annotations

from aio_pika.abc import AbstractRobustConnection

from chat_tui.protocol.conversations import Conversation
from tests.conftest import Deployment, eventually, has_group, knows
from tests.test_wire_format import RawSpy


async def test_every_publish_carries_the_login_as_user_id(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    spy = await RawSpy.start(raw, deployment, "#")
    alice = await deployment.client("alice")
    bob = await deployment.client("bob")
    await eventually(lambda: knows(alice, "bob"), what="alice to know bob")
    await alice.create_group("team")
    await eventually(lambda: has_group(bob, "team"), what="bob to see the group")
    await bob.join_group("team")
    sent = await alice.send(Conversation.dm("bob"), "hello bob")
    await alice.wait_sent(sent.message_id, timeout=10)
    await alice.send(Conversation.group("team"), "hello team")

    kinds = {"SEND_MESSAGE", "RECEIVE_MESSAGE", "DIRECTORY_EVENT"}
    await eventually(
        lambda: kinds <= {b["type"] for b in spy.bodies()}, what="every kind of message"
    )
    assert spy.messages
    assert {m.user_id for m in spy.messages} == {"guest"}, [m.user_id for m in spy.messages]
