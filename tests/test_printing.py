"""`chat-tui tail`'s printing sink: it prints, hands over what is new, and keeps nothing."""

from __future__ import annotations

import asyncio
import gc
import io
import weakref
from datetime import UTC, datetime

from chat_tui.cli.commands import follow_printed
from chat_tui.cli.printing import PrintingSink
from chat_tui.core.records import StoredMessage
from chat_tui.protocol.conversations import Conversation

DEVS = Conversation.group("devs")
BOB = Conversation.dm("bob")


def message(seq: int, conversation: Conversation = DEVS) -> StoredMessage:
    return StoredMessage(
        seq=seq,
        message_id=f"m{seq}",
        conversation=conversation,
        sender_id="bob",
        content=f"line {seq}",
        sent_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        outgoing=False,
        status="received",
    )


async def test_a_long_tail_keeps_no_printed_message() -> None:
    sink = PrintingSink(json_lines=True, out=io.StringIO())
    printed: list[weakref.ref[StoredMessage]] = []
    for batch in range(20):
        messages = [message(batch * 50 + n) for n in range(50)]
        printed.extend(weakref.ref(m) for m in messages)
        await sink.show(messages)
    del messages
    gc.collect()
    assert [ref for ref in printed if ref() is not None] == [], "the sink held printed messages"


async def _turns(count: int) -> None:
    """Let the event loop run `count` times: enough for an awaited event, never for a timer."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_tail_marks_read_what_it_printed_at_once_and_stops_at_the_count() -> None:
    sink = PrintingSink(json_lines=False, out=io.StringIO())
    marked: list[tuple[Conversation, int]] = []

    async def mark_read(conversation: Conversation, seq: int) -> None:
        marked.append((conversation, seq))

    following = asyncio.create_task(follow_printed(sink, mark_read, count=4, idle=None))
    await _turns(5)
    assert marked == [], "nothing printed, nothing read"
    await sink.show([message(1), message(2, BOB), message(3)])
    await _turns(10)
    assert marked == [(DEVS, 3), (BOB, 2)], "the newest printed seq per conversation"
    assert not following.done()
    await sink.show([message(4, BOB)])
    await _turns(10)
    assert following.done(), "the count is reached: tail stops"
    assert marked == [(DEVS, 3), (BOB, 2), (BOB, 4)]


async def test_tail_stops_once_nothing_was_printed_for_the_idle_time() -> None:
    sink = PrintingSink(json_lines=False, out=io.StringIO())
    marked: list[tuple[Conversation, int]] = []

    async def mark_read(conversation: Conversation, seq: int) -> None:
        marked.append((conversation, seq))

    loop = asyncio.get_running_loop()
    started = loop.time()
    following = asyncio.create_task(follow_printed(sink, mark_read, count=None, idle=0.3))
    await asyncio.sleep(0.2)
    await sink.show([message(1)])
    await asyncio.wait_for(following, timeout=5)
    assert loop.time() - started >= 0.5, "a printed message restarts the idle time"
    assert marked == [(DEVS, 1)]
