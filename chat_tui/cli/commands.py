"""The headless commands. Each takes the parsed flags and returns an exit code."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from chat_tui.cli.printing import (
    PrintingSink,
    ProblemSink,
    as_json,
    as_text,
    hit_as_json,
    hit_as_text,
)
from chat_tui.config import Settings, redact
from chat_tui.core.client import ChatClient
from chat_tui.core.errors import ChatError, OfflineError
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.ids import InvalidIdError

CONNECT_TIMEOUT = 10.0
FLUSH_ON_EXIT = 5.0


def how_to_start_a_broker(settings: Settings) -> str:
    return (
        f"RabbitMQ at {redact(settings.amqp_url)} is unreachable. Start one with "
        "'make broker' (or 'rabbitmq-server -detached', or 'docker compose up -d'), "
        "or point CHAT_TUI_AMQP_URL at a running broker."
    )


def conversation_of(args: argparse.Namespace) -> Conversation:
    try:
        if args.group:
            return Conversation.group(args.group.removeprefix("#"))
        return Conversation.dm(args.dm.removeprefix("@"))
    except InvalidIdError as exc:
        raise ChatError(str(exc)) from None


def why_offline(client: ChatClient) -> str:
    """A broker that answers, but cannot serve a queue of ours, is not one to start; the
    client has told the whole reason on stderr already (`ProblemSink`)."""
    queue = client.status.unavailable_queue
    if queue is not None:
        return (
            f"RabbitMQ at {redact(client.settings.amqp_url)} answers, but its queue "
            f"{queue!r} is unavailable (why, and what to do, is above)."
        )
    return how_to_start_a_broker(client.settings)


async def _connect(client: ChatClient, required: bool) -> bool:
    online = await client.wait_first_attempt(CONNECT_TIMEOUT)
    if client.fatal_error:
        raise ChatError(client.fatal_error)
    if not online and required:
        raise OfflineError(why_offline(client))
    return online


async def _finish(client: ChatClient) -> None:
    """Give anything still in the outbox (from this run or an earlier one) a chance."""
    if client.online and await client.outbox_backlog():
        await client.flush(FLUSH_ON_EXIT)


async def send(settings: Settings, args: argparse.Namespace) -> int:
    conversation = conversation_of(args)
    async with ChatClient(settings, ProblemSink(), receive_messages=False) as client:
        online = await _connect(client, required=False)
        if online:
            await client.wait_directory()
        elif not args.wait:
            # Validate against the cached directory and queue; the next run sends it.
            await client.send(conversation, args.text)
            print(
                f"queued: {why_offline(client)} The message leaves at the next "
                f"run of chat-tui for {settings.user}."
            )
            return 0
        stored = await client.send(conversation, args.text)
        if not online:
            print(f"waiting for RabbitMQ at {redact(settings.amqp_url)}...", file=sys.stderr)
        try:
            change = await client.wait_sent(stored.message_id, timeout=args.timeout)
        except TimeoutError:
            reason = (
                why_offline(client)
                if not client.online
                else f"the broker did not confirm it within {args.timeout:g} s."
            )
            raise ChatError(
                f"not sent yet: {reason} The message stays queued and leaves at the next "
                f"run of chat-tui for {settings.user}."
            ) from None
        if change.status == "failed":
            raise ChatError(f"not sent: {change.error}")
        await _finish(client)
        print(f"sent {stored.message_id}")
    return 0


async def tail(settings: Settings, args: argparse.Namespace) -> int:
    sink = PrintingSink(json_lines=args.json)
    async with ChatClient(settings, sink) as client:
        await _connect(client, required=True)
        if client.status.standby:
            print(
                f"another chat-tui of {settings.user} is receiving; this one waits as standby",
                file=sys.stderr,
            )
        if args.count is not None:
            client.inbox.show_at_most(args.count)
        following = asyncio.ensure_future(
            follow_printed(sink, client.mark_read, count=args.count, idle=args.idle)
        )
        refused = asyncio.ensure_future(client.wait_refused())
        try:
            await asyncio.wait({following, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (following, refused):
                task.cancel()
            await asyncio.gather(following, refused, return_exceptions=True)
        if refused.done() and not refused.cancelled():
            # Removed, a new password, rights taken away: waiting cannot help.
            raise ChatError(refused.result())
        if not following.cancelled():
            following.result()
        await _finish(client)
    return 0


async def follow_printed(
    sink: PrintingSink,
    mark_read: Callable[[Conversation, int], Awaitable[None]],
    *,
    count: int | None,
    idle: float | None,
) -> None:
    """Mark read what `sink` prints as soon as it is printed, until it has printed
    `count` messages or printed nothing for `idle` seconds (neither: until cancelled)."""
    loop = asyncio.get_running_loop()
    last_activity = loop.time()
    while count is None or sink.printed_count < count:
        try:
            async with asyncio.timeout_at(None if idle is None else last_activity + idle):
                marks = await sink.next_read_marks()
        except TimeoutError:
            return
        last_activity = loop.time()
        for conversation, seq in marks.items():
            await mark_read(conversation, seq)


async def group_action(settings: Settings, args: argparse.Namespace) -> int:
    async with ChatClient(settings, ProblemSink(), receive_messages=False) as client:
        await _connect(client, required=True)
        action = {
            "create": client.create_group,
            "join": client.join_group,
            "leave": client.leave_group,
        }[args.command]
        await action(args.group)
        if args.command == "join":
            # The group's earlier messages come into the cache, for `history` to show.
            await client.history.wait_joined(args.group, client.settings.archive_timeout * 2)
        await _finish(client)
        past = {"create": "created", "join": "joined", "leave": "left"}[args.command]
        print(f"{past} {args.group.removeprefix('#')}")
    return 0


async def _read_directory(client: ChatClient) -> None:
    """Follow the directory to its end, or say that the answer comes from the cache."""
    if await _connect(client, required=False):
        await client.wait_directory()
    else:
        print("(offline: from the local cache)", file=sys.stderr)


async def groups(settings: Settings, args: argparse.Namespace) -> int:
    async with ChatClient(settings, ProblemSink(), receive_messages=False) as client:
        await _read_directory(client)
        names = await client.cache.groups() if args.all else await client.my_groups()
        for name in names:
            print(name)
        await _finish(client)
    return 0


async def members(settings: Settings, args: argparse.Namespace) -> int:
    async with ChatClient(settings, ProblemSink(), receive_messages=False) as client:
        await _read_directory(client)
        for name in await client.members(args.group):
            print(name)
        await _finish(client)
    return 0


async def users(settings: Settings, args: argparse.Namespace) -> int:
    async with ChatClient(settings, ProblemSink(), receive_messages=False) as client:
        await _read_directory(client)
        for name in await client.cache.users():
            print(name)
        await _finish(client)
    return 0


async def history(settings: Settings, args: argparse.Namespace) -> int:
    conversation = conversation_of(args)
    async with ChatClient(settings, ProblemSink(), receive_messages=False) as client:
        await client.wait_first_attempt(2.0)
        messages = await client.cache.history(conversation, limit=args.limit)
        for message in messages:
            print(as_json(message) if args.json else as_text(message))
        await _finish(client)
    return 0


NO_MATCH = 3
"""`chat-tui search`'s exit code when nothing matched (1 is an error, 2 a usage error)."""


async def search(settings: Settings, args: argparse.Namespace) -> int:
    conversation = conversation_of(args) if args.group or args.dm else None
    async with ChatClient(settings, ProblemSink(), receive_messages=False) as client:
        await _connect(client, required=False)
        outcome = await client.history.search(args.text, conversation, limit=args.limit)
        for hit in outcome.hits:
            print(hit_as_json(hit) if args.json else hit_as_text(hit))
        if outcome.archive in ("unavailable", "refused"):
            print(
                f"chat-tui: only the local cache was searched: {outcome.archive_detail}",
                file=sys.stderr,
            )
        if not outcome.hits:
            print("chat-tui: no message matches", file=sys.stderr)
    return 0 if outcome.hits else NO_MATCH
