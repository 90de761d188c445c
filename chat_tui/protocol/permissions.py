"""The broker permissions of a chat user in accounts mode (docs/protocol.md).

A user configures nothing: every exchange and queue exists before the user's first
start, so no account can delete, purge or pre-declare anything. Vhost permissions are
regexes on resource names and do not expand `{username}`, so the user ID is spelled out;
topic permissions are regexes on routing keys, where RabbitMQ does expand `{username}`.
Write on one's own queues is what binding them needs; topic read is checked on binds.

The archive has an account of its own (`archive_permissions`), named so that it cannot
be taken for a chat user's: it reads its two queues and the directory and answers on
direct reply-to, through the default exchange, which no chat user may write to (an
answer there could be forged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chat_tui.protocol.ids import validate_id
from chat_tui.protocol.names import Names

ID_FRAGMENT = "[a-z0-9][a-z0-9_-]*"
"""A user or group ID inside a routing key (ids.ID_PATTERN, without its length cap)."""

TOPIC_WRITE = (
    rf"^(user|group|receipt)\.{ID_FRAGMENT}$"
    r"|^directory\.user\.{username}$"
    rf"|^directory\.group\.{ID_FRAGMENT}$"
    r"|^archive\.request$"
)
"""Publish DMs, group messages and receipts to anyone; directory events only as oneself
(a group's `created`/`joined`/`left` are checked by receivers); history and search
requests to the archive (names.ARCHIVE_REQUEST_KEY)."""

TOPIC_READ = rf"^(user|receipt)\.{{username}}$|^group\.{ID_FRAGMENT}$"
"""Bind one's queues to one's own DMs and receipts, and to any group (groups are public)."""

NOTHING = "^$"

DEFAULT_EXCHANGE = "amq.default"
"""How RabbitMQ names the default exchange ("") in permission checks."""

ARCHIVE_LOGIN_SUFFIX = ".archive"


@dataclass(frozen=True)
class VhostPermissions:
    configure: str
    write: str
    read: str


@dataclass(frozen=True)
class TopicPermissions:
    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class AccountPermissions:
    """Everything one chat user's account may do, exactly."""

    vhost: VhostPermissions
    topic: TopicPermissions


def chat_user_permissions(names: Names, user_id: str) -> AccountPermissions:
    """The permissions of `user_id` under `names`' namespace."""
    validate_id(user_id, "user ID")
    ns, user = re.escape(names.namespace), re.escape(user_id)
    own_queues = rf"(inbox|receipts)\.{user}"
    return AccountPermissions(
        vhost=VhostPermissions(
            configure=NOTHING,
            write=rf"^{ns}\.(messages|{own_queues})$",
            read=rf"^{ns}\.(messages|directory|{own_queues})$",
        ),
        topic=TopicPermissions(
            exchange=names.messages_exchange, write=TOPIC_WRITE, read=TOPIC_READ
        ),
    )


def archive_login(names: Names) -> str:
    """The broker login of `names`' archive: `NS.archive`. A user ID has no '.', so the
    archive is never mistaken for a chat user, by `admin check` or by the service
    deciding whether it runs in accounts mode."""
    return f"{names.namespace}{ARCHIVE_LOGIN_SUFFIX}"


def is_archive_login(names: Names, login: str) -> bool:
    return login == archive_login(names)


def archive_permissions(names: Names) -> AccountPermissions:
    """The archive's rights, exactly: consume NS.archive and NS.archive.requests, read
    the directory stream, publish answers to the default exchange. It configures
    nothing (`chat-tui admin init` declares its queues); a message it rejects reaches
    NS.dead through its queue's dead-letter exchange, which takes no right of the
    consumer's. Its topic entry on NS.messages allows no routing key, so that a write on
    NS.messages granted by mistake still publishes nothing in anyone's name."""
    ns = re.escape(names.namespace)
    return AccountPermissions(
        vhost=VhostPermissions(
            configure=NOTHING,
            write=rf"^{re.escape(DEFAULT_EXCHANGE)}$",
            read=rf"^{ns}\.(archive|archive\.requests|directory)$",
        ),
        topic=TopicPermissions(exchange=names.messages_exchange, write=NOTHING, read=NOTHING),
    )
