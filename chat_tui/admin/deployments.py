"""Which accounts deployment (namespace) a vhost's rights and exchanges belong to.

Accounts belong to the whole broker and a user has one permission entry per vhost, so
two namespaces on one vhost would overwrite each other's rights: `chat-tui admin` tells
them apart by reading the namespace back out of what `chat_user_permissions()` wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from chat_tui.protocol.names import Names
from chat_tui.protocol.permissions import TopicPermissions, VhostPermissions, chat_user_permissions

_PLACEHOLDER = Names("placeholder")
_UNESCAPE = re.compile(r"\\(.)")
_MESSAGES_SUFFIX = _PLACEHOLDER.messages_exchange.removeprefix(_PLACEHOLDER.namespace)


def namespace_of_rights(user_id: str, rights: VhostPermissions) -> str | None:
    """The namespace whose chat-user rights `rights` are exactly, or None when they are
    not a chat user's of any namespace (no rights, drift, an administrator's)."""
    template = chat_user_permissions(_PLACEHOLDER, user_id).vhost.write
    prefix = f"^{re.escape(_PLACEHOLDER.namespace)}"
    suffix = template.removeprefix(prefix)
    if not (rights.write.startswith("^") and rights.write.endswith(suffix)):
        return None
    namespace = _UNESCAPE.sub(r"\1", rights.write[1 : -len(suffix)])
    try:
        names = Names(namespace)
    except ValueError:
        return None
    return namespace if chat_user_permissions(names, user_id).vhost == rights else None


def foreign_deployments(
    names: Names, user_id: str, rights: VhostPermissions | None, topic: Iterable[TopicPermissions]
) -> list[str]:
    """What ties `user_id`'s rights on this vhost to a namespace other than `names`'."""
    found: list[str] = []
    namespace = None if rights is None else namespace_of_rights(user_id, rights)
    if namespace is not None and namespace != names.namespace:
        found.append(f"namespace {namespace}")
    found.extend(
        f"topic permissions on {entry.exchange}"
        for entry in topic
        if entry.exchange.endswith(_MESSAGES_SUFFIX) and entry.exchange != names.messages_exchange
    )
    return found


def other_namespaces(names: Names, exchanges: Iterable[tuple[str, str]]) -> list[str]:
    """The namespaces other than `names`' whose `NS.messages` topic exchange is among
    `exchanges` (name, type)."""
    return sorted(
        name.removesuffix(_MESSAGES_SUFFIX)
        for name, kind in exchanges
        if kind == "topic" and name.endswith(_MESSAGES_SUFFIX) and name != names.messages_exchange
    )
