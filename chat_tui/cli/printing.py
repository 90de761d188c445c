"""How the command line prints messages: one line of text, or one JSON object per line."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from chat_tui.core.records import StoredMessage
from chat_tui.core.search import SearchHit
from chat_tui.core.sink import Sink
from chat_tui.protocol.conversations import Conversation


def status_label(message: StoredMessage) -> str:
    """The tick of an own message; groups show how many members got or read it."""
    if not message.outgoing:
        return ""
    if message.status == "failed":
        return f"failed: {message.error}" if message.error else "failed"
    if message.conversation.kind == "group" and message.recipient_count > 1:
        if message.read_count:
            return f"read {message.read_count}/{message.recipient_count}"
        if message.delivered_count:
            return f"delivered {message.delivered_count}/{message.recipient_count}"
    return message.status


def as_json(message: StoredMessage) -> str:
    return json.dumps(
        {
            "seq": message.seq,
            "message_id": message.message_id,
            "conversation": message.conversation.key,
            "group_id": message.conversation.name if message.conversation.kind == "group" else None,
            "sender_id": message.sender_id,
            "content": message.content,
            "timestamp": message.sent_at.isoformat().replace("+00:00", "Z"),
            "status": message.status,
            "delivered_count": message.delivered_count,
            "read_count": message.read_count,
            "recipient_count": message.recipient_count,
        },
        ensure_ascii=False,
    )


def _printable(text: str) -> str:
    # Other people's text must not drive the terminal: escape control characters.
    return "".join(ch if ch.isprintable() or ch == "\n" else repr(ch)[1:-1] for ch in text)


def as_text(message: StoredMessage) -> str:
    when = message.sent_at.astimezone().strftime("%Y-%m-%d %H:%M")
    label = status_label(message)
    suffix = f"  [{label}]" if label else ""
    text = _printable(message.content)
    return f"{when}  {message.conversation}  {message.sender_id}: {text}{suffix}"


def hit_as_json(hit: SearchHit) -> str:
    return json.dumps(
        {
            "conversation": hit.conversation.key,
            "message_id": hit.message_id,
            "sender_id": hit.sender_id,
            "timestamp": hit.sent_at.isoformat().replace("+00:00", "Z"),
            "snippet": hit.snippet,
            "content": hit.content,
            "in_cache": hit.in_cache,
        },
        ensure_ascii=False,
    )


def hit_as_text(hit: SearchHit) -> str:
    when = hit.sent_at.astimezone().strftime("%Y-%m-%d %H:%M")
    where = "" if hit.in_cache else "  [archive]"
    return f"{when}  {hit.conversation}  {hit.sender_id}: {_printable(hit.snippet)}{where}"


class PrintingSink(Sink):
    """The sink of `chat-tui tail`: prints, flushes, and only then lets the core ack.

    It keeps no printed message, only how many there were and, until `next_read_marks`
    takes them, the newest printed seq of each conversation: a tail can run for days."""

    def __init__(self, json_lines: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.json_lines = json_lines
        self.out = out
        self.err = err
        self.printed_count = 0
        self._unread_marks: dict[Conversation, int] = {}
        self._printed_more = asyncio.Event()

    async def show(self, messages: Sequence[StoredMessage]) -> None:
        for message in messages:
            self.out.write((as_json(message) if self.json_lines else as_text(message)) + "\n")
        self.out.flush()
        if not messages:
            return
        marks = self._unread_marks
        for message in messages:
            marks[message.conversation] = max(marks.get(message.conversation, 0), message.seq)
        self.printed_count += len(messages)
        self._printed_more.set()

    async def next_read_marks(self) -> dict[Conversation, int]:
        """Wait until something new is printed; the newest printed seq per conversation
        since the last call."""
        await self._printed_more.wait()
        self._printed_more.clear()
        marks, self._unread_marks = self._unread_marks, {}
        return marks

    def problem(self, text: str) -> None:
        self.err.write(f"chat-tui: {text}\n")
        self.err.flush()


class ProblemSink(Sink):
    """The sink of commands that show no messages: problems still reach stderr, so that,
    say, a queued DM that the broker returns as "unknown user" is not failed silently."""

    def problem(self, text: str) -> None:
        print(f"chat-tui: {text}", file=sys.stderr, flush=True)
