"""`chat-tui admin check`: every account on the vhost against docs/protocol.md's rules.

A chat user is an account named as a user ID that has chat queues or topic permissions
on NS.messages; it must have exactly `chat_user_permissions()` and no tags. The archive's
account (`archive_login()`, never a user ID) must have exactly `archive_permissions()`
and no tags, and its two queues must exist. Any other account with rights on the vhost
is either an administrator or drift.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from chat_tui.admin.accounts import Account
from chat_tui.protocol.ids import is_valid_id
from chat_tui.protocol.names import Names
from chat_tui.protocol.permissions import (
    AccountPermissions,
    archive_login,
    archive_permissions,
    chat_user_permissions,
    is_archive_login,
)

GUEST_UNKNOWABLE = (
    "the guest account exists; whether it may log in from other hosts (loopback_users) "
    "is not visible over the HTTP API of RabbitMQ 3.10: keep loopback_users at its "
    "default, or delete guest ('rabbitmqctl delete_user guest')"
)


@dataclass(frozen=True)
class Finding:
    account: str
    text: str
    drift: bool = True
    """False for a warning: worth reading, not a failed check."""

    def line(self) -> str:
        return f"{'' if self.drift else 'warning: '}{self.account}: {self.text}"


def is_chat_user(account: Account, names: Names) -> bool:
    on_messages = any(entry.exchange == names.messages_exchange for entry in account.topic)
    return is_valid_id(account.name) and (account.has_queues or on_messages)


def audit(
    accounts: Sequence[Account], names: Names, vhost: str, me: str, queues: Collection[str]
) -> list[Finding]:
    """What differs from the rules; `me` (the administrator running it) is left out.
    `queues` are the names of the vhost's queues."""
    findings: list[Finding] = []
    for account in accounts:
        if "impersonator" in account.tags:
            findings.append(
                Finding(account.name, "has the impersonator tag: it can publish as anyone")
            )
        if account.name == "guest":
            findings.append(Finding("guest", GUEST_UNKNOWABLE, drift=False))
        elif account.name == me:
            continue
        elif is_archive_login(names, account.name):
            findings.extend(_archive_drift(account, names, vhost, queues))
        elif is_chat_user(account, names):
            findings.extend(_chat_user_drift(account, names, vhost))
        elif "administrator" not in account.tags and (account.vhost or account.topic):
            findings.append(
                Finding(
                    account.name,
                    f"has rights on vhost {vhost} but no chat queues: "
                    f"'chat-tui admin remove-user {account.name}' or 'add-user {account.name}'",
                )
            )
    if not any(is_archive_login(names, account.name) for account in accounts):
        findings.append(
            Finding(
                archive_login(names),
                f"no archive account: messages collect in {names.archive_queue} until an "
                "archive runs; 'chat-tui admin add-archive' creates its account",
                drift=False,
            )
        )
    return findings


def _administrator(name: str, tags: Sequence[str]) -> list[Finding]:
    if "administrator" in tags:
        return [Finding(name, "has the administrator tag: it can change any account and queue")]
    return []


def _archive_drift(
    account: Account, names: Names, vhost: str, queues: Collection[str]
) -> list[Finding]:
    name = account.name
    found = _administrator(name, account.tags)
    other_tags = sorted(set(account.tags) - {"administrator", "impersonator"})
    if other_tags:
        found.append(
            Finding(name, f"has the tags {', '.join(other_tags)}: the archive's account has none")
        )
    for queue in (names.archive_queue, names.archive_requests_queue):
        if queue not in queues:
            found.append(Finding(name, f"has no {queue}: run 'chat-tui admin init'"))
    missing_topic = "has no topic permissions: 'chat-tui admin add-archive' sets them"
    return found + _rights_drift(account, archive_permissions(names), vhost, missing_topic)


def _chat_user_drift(account: Account, names: Names, vhost: str) -> list[Finding]:
    name = account.name
    found = _administrator(name, account.tags)
    other_tags = sorted(set(account.tags) - {"administrator", "impersonator"})
    if other_tags:
        found.append(Finding(name, f"has the tags {', '.join(other_tags)}: chat users have none"))
    if not account.has_inbox:
        found.append(Finding(name, f"has no {names.inbox_queue(name)}: run add-user {name}"))
    if not account.has_receipts:
        found.append(Finding(name, f"has no {names.receipts_queue(name)}: run add-user {name}"))
    missing_topic = "has no topic permissions: it may bind any key and read anyone's DMs"
    return found + _rights_drift(account, chat_user_permissions(names, name), vhost, missing_topic)


def _rights_drift(
    account: Account, wanted: AccountPermissions, vhost: str, missing_topic: str
) -> list[Finding]:
    """Where `account`'s rights on the vhost and NS.messages differ from `wanted`."""
    found: list[Finding] = []
    name = account.name
    if account.vhost is None:
        found.append(Finding(name, f"has no permissions on vhost {vhost}: it cannot log in"))
    else:
        for right in ("configure", "write", "read"):
            have, should = getattr(account.vhost, right), getattr(wanted.vhost, right)
            if have != should:
                found.append(Finding(name, f"rights differ: {right} is {have!r}, not {should!r}"))
    if not account.topic:
        found.append(Finding(name, missing_topic))
    for entry in account.topic:
        if entry.exchange != wanted.topic.exchange:
            found.append(
                Finding(name, f"extra rights: topic permissions on exchange {entry.exchange!r}")
            )
            continue
        for right in ("write", "read"):
            have, should = getattr(entry, right), getattr(wanted.topic, right)
            if have != should:
                found.append(
                    Finding(name, f"rights differ: topic {right} is {have!r}, not {should!r}")
                )
    return found
