"""Fixed data written straight into a user's cache, for snapshots and benchmarks.

Everything goes through the Store's public API, with fixed IDs and timestamps, so a
picture of the app over this cache is the same on every run and machine.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from chat_tui.config import Settings
from chat_tui.core.cache_policy import open_cache
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import DirectoryEvent, ReceiveMessage, SendMessage

DAY_ONE = datetime(2026, 3, 9, 9, 15, tzinfo=UTC)
DAY_TWO = datetime(2026, 3, 10, 8, 40, tzinfo=UTC)


def _id(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def _incoming(
    n: int, sender: str, text: str, at: datetime, group: str | None = None, to: str | None = None
) -> SendMessage:
    return SendMessage(
        message_id=_id(n),
        sender_id=sender,
        group_id=group,
        recipient_id=to,
        content=text,
        timestamp=at,
    )


async def fill_sample_cache(settings: Settings) -> None:
    """alice's cache: #lobby (4 members) with history over two days and receipts,
    #dev with unread messages and a mention, DMs with bob and carol."""
    me = settings.user
    store = await open_cache(settings.database_path, me)
    try:
        events = [
            DirectoryEvent(event="registered", user_id=u, timestamp=DAY_ONE)
            for u in (me, "bob", "carol", "dave")
        ]
        for group, members in (("lobby", (me, "bob", "carol", "dave")), ("dev", (me, "bob"))):
            events.append(
                DirectoryEvent(
                    event="created", user_id=members[0], group_id=group, timestamp=DAY_ONE
                )
            )
            events += [
                DirectoryEvent(event="joined", user_id=m, group_id=group, timestamp=DAY_ONE)
                for m in members
            ]
        await store.apply_directory(events)
        minute = timedelta(minutes=1)
        lobby = [
            ("bob", "morning! is the broker up?"),
            ("carol", "yes, since 9. [bold]markup[/bold] stays literal"),
            ("dave", "a terminal escape \x1b[31mred?\x1b[0m shows as text"),
        ]
        await store.store_incoming(
            [
                _incoming(100 + i, who, text, DAY_ONE + i * minute, group="lobby")
                for i, (who, text) in enumerate(lobby)
            ]
        )
        await store.mark_read(Conversation.group("lobby"), 10**9, send_receipts=False)
        own, _ = await store.enqueue_message(
            SendMessage(
                message_id=_id(200),
                sender_id=me,
                group_id="lobby",
                content="great, I'll push the release notes",
                timestamp=DAY_ONE + 5 * minute,
            ),
        )
        await store.confirm_published(await store.outbox())
        await store.apply_receipts(
            [
                ReceiveMessage(
                    recipient_id="bob",
                    message_id=_id(200),
                    status="read",
                    timestamp=DAY_ONE + 6 * minute,
                ),
                ReceiveMessage(
                    recipient_id="carol",
                    message_id=_id(200),
                    status="delivered",
                    timestamp=DAY_ONE + 6 * minute,
                ),
            ]
        )
        await store.store_incoming(
            [
                _incoming(
                    300,
                    "bob",
                    "a long line that wraps around the conversation pane to show "
                    "how continuation lines are indented under the text column",
                    DAY_TWO,
                    group="lobby",
                ),
                _incoming(301, "carol", "see you at standup", DAY_TWO + minute, group="lobby"),
            ]
        )
        await store.mark_read(Conversation.group("lobby"), 10**9, send_receipts=False)
        await store.enqueue_message(
            SendMessage(
                message_id=_id(400),
                sender_id=me,
                group_id="lobby",
                content="on my way (typed offline: still queued)",
                timestamp=DAY_TWO + 2 * minute,
            ),
        )
        await store.store_incoming(
            [
                _incoming(500, "bob", "the build is red", DAY_TWO + 3 * minute, group="dev"),
                _incoming(501, "bob", f"{me}, can you look?", DAY_TWO + 4 * minute, group="dev"),
                _incoming(600, "carol", "lunch today?", DAY_TWO + 5 * minute, to=me),
            ]
        )
        dm, _ = await store.enqueue_message(
            SendMessage(
                message_id=_id(700),
                sender_id=me,
                recipient_id="bob",
                content="thanks for the review",
                timestamp=DAY_ONE + 30 * minute,
            ),
        )
        assert own.seq and dm.seq
        await store.confirm_published(
            [
                i
                for i in await store.outbox()
                if i.kind == "message" and i.amqp_message_id == str(_id(700))
            ]
        )
        await store.apply_receipts(
            [
                ReceiveMessage(
                    recipient_id="bob",
                    message_id=_id(700),
                    status="read",
                    timestamp=DAY_ONE + 31 * minute,
                ),
            ]
        )
    finally:
        await store.close()


async def fill_long_conversation(settings: Settings, peer: str, count: int) -> Conversation:
    """A DM with `peer` of `count` messages (all read), for paging and the benchmark."""
    store = await open_cache(settings.database_path, settings.user)
    try:
        chunk = 2000
        for start in range(0, count, chunk):
            await store.store_incoming(
                [
                    _incoming(
                        10_000_000 + n,
                        peer,
                        f"message number {n}",
                        DAY_ONE + timedelta(seconds=n),
                        to=settings.user,
                    )
                    for n in range(start, min(count, start + chunk))
                ],
                send_delivered=False,
            )
        conversation = Conversation.dm(peer)
        await store.mark_read(conversation, 2**62, send_receipts=False)
        return conversation
    finally:
        await store.close()
