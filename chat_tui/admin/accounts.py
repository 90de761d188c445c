"""The read side of `chat-tui admin`: every account with what it may do on the vhost and
whether it has chat queues there, gathered in a handful of API calls."""

from __future__ import annotations

from dataclasses import dataclass

from chat_tui.admin.api import ManagementApi
from chat_tui.admin.provision import tags_of
from chat_tui.protocol.names import Names
from chat_tui.protocol.permissions import TopicPermissions, VhostPermissions


@dataclass(frozen=True)
class Account:
    name: str
    tags: tuple[str, ...]
    vhost: VhostPermissions | None
    """None: the account cannot even open the vhost."""
    topic: tuple[TopicPermissions, ...]
    has_inbox: bool
    has_receipts: bool

    @property
    def has_queues(self) -> bool:
        return self.has_inbox or self.has_receipts


async def gather_accounts(api: ManagementApi, names: Names) -> list[Account]:
    await api.check_vhost()
    vhost = {
        entry["user"]: VhostPermissions(entry["configure"], entry["write"], entry["read"])
        for entry in await api.permissions()
    }
    topic: dict[str, list[TopicPermissions]] = {}
    for entry in await api.topic_permissions():
        topic.setdefault(entry["user"], []).append(
            TopicPermissions(entry["exchange"], entry["write"], entry["read"])
        )
    queues = {entry["name"] for entry in await api.queues()}
    return [
        Account(
            name=user["name"],
            tags=tuple(tags_of(user)),
            vhost=vhost.get(user["name"]),
            topic=tuple(topic.get(user["name"], ())),
            has_inbox=names.inbox_queue(user["name"]) in queues,
            has_receipts=names.receipts_queue(user["name"]) in queues,
        )
        for user in sorted(await api.users(), key=lambda user: str(user["name"]))
    ]
