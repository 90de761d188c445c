"""A chat user typing: sends COUNT messages through the real ChatClient, one line of JSON
per message as soon as it is stored (the moment the user pressed Enter), then waits until
the outbox is drained. Run as a subprocess, so that a test can kill it with -9.

    python tests/faults/sender.py --group G --dm U --count N --interval S --tag T

Settings come from CHAT_TUI_* variables, as for the CLI. With --count 0 it only drains
what an earlier (killed) run left in the outbox: the "runs again" of a scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from chat_tui.cli.printing import PrintingSink
from chat_tui.config import load_settings
from chat_tui.core.client import ChatClient
from chat_tui.core.status import ClientStatus
from chat_tui.protocol.conversations import Conversation


def message_text(tag: str, user: str, index: int) -> str:
    return f"{tag}:{user}:{index:04d}"


class ReportingSink(PrintingSink):
    """Also prints each change of the connection state, as `{"state": ...}`."""

    def __init__(self) -> None:
        super().__init__(json_lines=True)
        self.last_state = ""

    def connection_changed(self, status: ClientStatus) -> None:
        if status.state != self.last_state:
            self.last_state = status.state
            print(json.dumps({"state": str(status.state)}), flush=True)


def dump_tasks() -> None:
    """On SIGUSR1: where every task waits, for a scenario that hangs."""
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)


async def run(args: argparse.Namespace) -> int:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    settings = load_settings()
    targets = [Conversation.group(g) for g in args.group] + [Conversation.dm(u) for u in args.dm]
    async with ChatClient(settings, ReportingSink(), receive_messages=False) as client:
        if await client.wait_first_attempt(10):
            await client.wait_directory()
        for index in range(args.count):
            conversation = targets[index % len(targets)]
            stored = await client.send(conversation, message_text(args.tag, settings.user, index))
            line = {
                "message_id": stored.message_id,
                "conversation": conversation.key,
                "content": stored.content,
            }
            print(json.dumps(line), flush=True)
            await asyncio.sleep(args.interval)
        while not await client.flush(1.0):
            pass
        print(json.dumps({"drained": True}), flush=True)
        # aio-pika restores the publisher channel first, so the outbox can drain while the
        # other channels are still being restored; stay until the client says "online",
        # as a user who keeps the app open would see it.
        await client.wait_online(15)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--group", action="append", default=[])
    parser.add_argument("--dm", action="append", default=[])
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--tag", default="m")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
