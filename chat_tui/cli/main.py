"""`chat-tui`: the full-screen app with no subcommand, headless commands otherwise."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from yarl import URL

from chat_tui import __version__
from chat_tui.admin import commands as admin_commands
from chat_tui.cli import commands
from chat_tui.config import Settings, SettingsError, load_settings
from chat_tui.core.errors import ChatError

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def _settings_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # In subcommands the defaults are suppressed so that flags given before the
    # subcommand are not overwritten by "not given" after it.
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("settings (also CHAT_TUI_* variables or config.toml)")
    group.add_argument("--user", "-u", default=default, help="your user ID")
    group.add_argument("--amqp-url", default=default, help="the RabbitMQ URL")
    group.add_argument("--namespace", default=default, help="prefix of exchanges and queues")
    group.add_argument("--data-dir", type=Path, default=default, help="where the cache lives")
    group.add_argument(
        "--read-receipts",
        action=argparse.BooleanOptionalAction,
        default=default,
        help="tell senders when you have read their messages",
    )
    group.add_argument("--verbose", "-v", action="store_true", default=default or False)


def _target(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--group", "-g", help="a group ID")
    target.add_argument("--dm", "-d", help="a user ID, for a direct message")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-tui",
        description="A terminal chat over RabbitMQ. With no command, opens the full-screen app.",
    )
    parser.add_argument("--version", action="version", version=f"chat-tui {__version__}")
    _settings_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=help_text, description=help_text)
        _settings_flags(child, suppress=True)
        return child

    send = command("send", "send a message; exits once the broker confirmed it")
    _target(send)
    send.add_argument("text", help="the message")
    send.add_argument(
        "--wait", action="store_true", help="if the broker is down, wait for it instead of queueing"
    )
    send.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")

    tail = command("tail", "print incoming messages as they are stored (acked after printing)")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--count", type=int, help="stop after N messages")
    tail.add_argument("--idle", type=float, help="stop after SECONDS without a message")

    for name, text in (
        ("create", "create a group and join it"),
        ("join", "join a group"),
        ("leave", "leave a group"),
    ):
        command(name, text).add_argument("group", help="the group ID")

    groups = command("groups", "list your groups")
    groups.add_argument("--all", action="store_true", help="list every group")
    command("members", "list the members of a group").add_argument("group", help="the group ID")
    command("users", "list the registered users")

    history = command("history", "show a conversation from the local cache")
    _target(history)
    history.add_argument("--limit", type=int, default=50, help="the last N messages")
    history.add_argument("--json", action="store_true", help="one JSON object per line")

    search = command(
        "search",
        "search every conversation, in the local cache and the archive; exits 0 with "
        "matches, 3 with none, 1 on an error",
    )
    search.add_argument("text", help="plain words; quotes and operators are searched as text")
    target = search.add_mutually_exclusive_group()
    target.add_argument("--group", "-g", help="only in this group")
    target.add_argument("--dm", "-d", help="only in the DM with this user")
    search.add_argument("--limit", type=int, default=20, help="at most N results")
    search.add_argument("--json", action="store_true", help="one JSON object per line")

    demo = command("demo", "open the app with simulated users chatting in #lobby")
    demo.add_argument("--bots", type=int, default=3, help="how many simulated users")

    archive = command(
        "archive",
        "run an archive worker: store every message, answer history and search "
        "(start more of them to share the load)",
    )
    archive.add_argument(
        "--archive-db", help="a postgresql:// URL or a SQLite file (default: in --data-dir)"
    )
    archive.add_argument(
        "--retention-days", type=int, help="purge messages older than N days (default: keep all)"
    )

    admin = command("admin", "set up a broker with one account per user (management API)")
    admin_commands.add_arguments(admin, each=lambda action: _settings_flags(action, True))
    return parser


async def _archive(settings: Settings, args: argparse.Namespace) -> int:
    # Here, not at the top: only this command needs the archive's database drivers.
    from chat_tui.archive import service

    return await service.run(settings, args)


COMMANDS: dict[str, Command] = {
    "send": commands.send,
    "tail": commands.tail,
    "create": commands.group_action,
    "join": commands.group_action,
    "leave": commands.group_action,
    "groups": commands.groups,
    "members": commands.members,
    "users": commands.users,
    "history": commands.history,
    "search": commands.search,
    "admin": admin_commands.run,
    "archive": _archive,
}


def _carries_password(url: str) -> bool:
    """Whether `url` holds a password, with or without a scheme: yarl reads none in
    "user:pw@host/" unless told that a host follows."""
    try:
        parsed = URL(url if "://" in url else f"//{url}")
    except ValueError:
        # Unparsable: a colon before the '@' may still be a password; warn rather than miss it.
        return ":" in url.partition("@")[0] and "@" in url
    return bool(parsed.password)


def _warn_of_a_password_on_the_command_line(flag: str, url: str | None, instead: str) -> None:
    if url is not None and _carries_password(url):
        print(
            f"chat-tui: warning: the password in {flag} shows in the process list; "
            f"keep it in {instead} instead",
            file=sys.stderr,
        )


def _load(args: argparse.Namespace) -> Settings:
    _warn_of_a_password_on_the_command_line(
        "--amqp-url", args.amqp_url, "password_file or CHAT_TUI_PASSWORD"
    )
    _warn_of_a_password_on_the_command_line(
        "--admin-url", getattr(args, "admin_url", None), admin_commands.ADMIN_URL_ENV
    )
    flags = {
        "user": args.user,
        "amqp_url": args.amqp_url,
        "namespace": args.namespace,
        "data_dir": args.data_dir,
        "read_receipts": args.read_receipts,
        "archive_db": getattr(args, "archive_db", None),
        "archive_retention_days": getattr(args, "retention_days", None),
    }
    return load_settings(**flags)


def _fail(text: str) -> int:
    print(f"chat-tui: error: {text}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        settings = _load(args)
    except SettingsError as exc:
        return _fail(str(exc))
    try:
        if args.command is None or args.command == "demo":
            from chat_tui.tui.launch import launch  # the only place the CLI loads Textual

            return launch(settings, demo_bots=getattr(args, "bots", 0) if args.command else 0)
        return asyncio.run(COMMANDS[args.command](settings, args))
    except ChatError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
