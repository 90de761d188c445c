"""The `chat-tui admin` actions: their arguments, and running each against the
management API. Every action is idempotent and prints one line per step."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import SecretStr
from yarl import URL

from chat_tui.admin.accounts import Account, gather_accounts
from chat_tui.admin.api import AdminError, ManagementApi, vhost_of
from chat_tui.admin.audit import audit
from chat_tui.admin.provision import Provisioner
from chat_tui.config import Settings
from chat_tui.core.directory_snapshot import DirectorySnapshot, directory_snapshot
from chat_tui.protocol.names import Names
from chat_tui.protocol.permissions import is_archive_login

ADMIN_URL_ENV = "CHAT_TUI_ADMIN_URL"

Action = Callable[[Provisioner, argparse.Namespace, Settings], Coroutine[Any, Any, int]]
"""An action; its Settings log in to AMQP as the administrator (see `_as_admin`)."""


def _as_admin(settings: Settings, admin_url: str) -> Settings:
    """`settings` with the admin URL's login on amqp_url's host, port and vhost."""
    admin = URL(admin_url)
    amqp_url = str(URL(settings.broker_url).with_user(admin.user).with_password(None))
    return settings.model_copy(
        update={
            "amqp_url": amqp_url,
            "password": SecretStr(admin.password or ""),
            "password_file": None,
        }
    )


def _password(args: argparse.Namespace) -> str | None:
    """The password from stdin (one line) with --password-stdin; None: generate one."""
    if not args.password_stdin:
        return None
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise AdminError("--password-stdin: no password on standard input")
    return password


async def _init(provisioner: Provisioner, args: argparse.Namespace, admin: Settings) -> int:
    await provisioner.init()
    return 0


async def _add_user(provisioner: Provisioner, args: argparse.Namespace, admin: Settings) -> int:
    await provisioner.add_user(args.name, _password(args))
    return 0


async def _add_archive(provisioner: Provisioner, args: argparse.Namespace, admin: Settings) -> int:
    await provisioner.add_archive(_password(args))
    return 0


async def _remove_user(provisioner: Provisioner, args: argparse.Namespace, admin: Settings) -> int:
    await provisioner.remove_user(args.name)
    return 0


async def _passwd(provisioner: Provisioner, args: argparse.Namespace, admin: Settings) -> int:
    await provisioner.passwd(args.name, _password(args))
    return 0


_QUEUES = {
    (True, True): "chat user (inbox and receipts)",
    (True, False): "inbox only",
    (False, True): "receipts only",
    (False, False): "no chat queues",
}


ARCHIVE_SIDE = "the archive, not a chat user"


def _directory_side(name: str, account: Account | None, snapshot: DirectorySnapshot) -> str:
    if name not in snapshot.users:
        # Only a chat user's account is expected in the directory, not the admin's.
        chat_user = account is not None and account.has_queues
        return "not registered" + ("  (account without directory entry)" * chat_user)
    groups = len(snapshot.groups_of(name))
    entry = f"registered, in {groups} group{'s' * (groups != 1)}"
    return entry if account else f"{entry}  (directory entry without account)"


def _account_side(account: Account | None) -> str:
    if account is None:
        return "no account"
    tags = f"  [{', '.join(account.tags)}]" if account.tags else ""
    return f"{_QUEUES[(account.has_inbox, account.has_receipts)]}{tags}"


async def _users(provisioner: Provisioner, args: argparse.Namespace, admin: Settings) -> int:
    """Every account beside the directory: each name that either knows, one per line.
    The directory is read as the clients of a deployment with accounts read it."""
    names = provisioner.names
    accounts = {a.name: a for a in await gather_accounts(provisioner.api, names)}
    snapshot = await directory_snapshot(admin, verify_senders=True)
    for name in sorted(accounts.keys() | snapshot.users):
        account = accounts.get(name)
        if is_archive_login(names, name):
            # A user ID has no '.', so the archive's login cannot be in the directory.
            directory, side = "-", ARCHIVE_SIDE
        else:
            directory = _directory_side(name, account, snapshot)
            side = _account_side(account)
        # The account side last: its wording was this command's whole line before.
        provisioner.report(f"{name:<32}  directory: {directory:<44}  account: {side}")
    if snapshot.skipped:
        provisioner.report(f"directory: {snapshot.skipped} entries skipped as invalid")
    return 0


async def _check(provisioner: Provisioner, args: argparse.Namespace, admin: Settings) -> int:
    api = provisioner.api
    accounts = await gather_accounts(api, provisioner.names)
    queues = {queue["name"] for queue in await api.queues()}
    findings = audit(accounts, provisioner.names, api.vhost, me=api.login, queues=queues)
    for finding in findings:
        provisioner.report(finding.line())
    drift = sum(finding.drift for finding in findings)
    warnings = len(findings) - drift
    provisioner.report(
        f"check: {len(accounts)} accounts on vhost {api.vhost}, "
        f"{drift} problem{'s' * (drift != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    )
    return 1 if drift else 0


ACTIONS: dict[str, tuple[Action, str]] = {
    "init": (_init, "declare the shared exchanges and queues of the namespace, the archive's too"),
    "add-user": (_add_user, "create a chat user's account, queues and permissions"),
    "add-archive": (_add_archive, "create the archive's account and permissions"),
    "remove-user": (_remove_user, "delete a chat user's account and queues"),
    "passwd": (_passwd, "set a new password for an account"),
    "users": (_users, "list the accounts beside the directory's users"),
    "check": (_check, "audit every account's rights; exit 1 on drift"),
}


def add_arguments(
    admin: argparse.ArgumentParser, each: Callable[[argparse.ArgumentParser], None]
) -> None:
    """The actions under `chat-tui admin`; `each` adds the usual settings flags to one."""
    actions = admin.add_subparsers(dest="admin_action", metavar="ACTION", required=True)
    for name, (_, help_text) in ACTIONS.items():
        action = actions.add_parser(name, help=help_text, description=help_text)
        each(action)
        action.add_argument(
            "--admin-url",
            default=argparse.SUPPRESS,
            help=f"http://USER:PASSWORD@HOST:15672/ of an administrator (better: {ADMIN_URL_ENV},"
            " which the process list does not show)",
        )
        if name in ("add-user", "remove-user"):
            action.add_argument("name", help="the user ID, which is also the broker login")
        if name == "passwd":
            action.add_argument(
                "name", help="the user ID (the broker login), or the archive's login NS.archive"
            )
        if name in ("add-user", "add-archive", "passwd"):
            action.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from standard input instead of generating one",
            )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """`chat-tui admin ACTION`, on the vhost of amqp_url and the namespace setting."""
    admin_url = getattr(args, "admin_url", None) or os.environ.get(ADMIN_URL_ENV)
    if not admin_url:
        raise AdminError(
            f"no admin URL: set {ADMIN_URL_ENV} (or pass --admin-url) to "
            "http://USER:PASSWORD@HOST:15672/ of a RabbitMQ administrator"
        )
    action, _ = ACTIONS[args.admin_action]
    async with ManagementApi(admin_url, vhost_of(settings.broker_url)) as api:
        provisioner = Provisioner(
            api, Names(settings.namespace), report=print, queue_type=settings.queue_type
        )
        return await action(provisioner, args, _as_admin(settings, admin_url))
