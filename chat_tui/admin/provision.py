"""Provisioning, idempotently: the shared topology with the archive's queues, a user's
account, queues and permissions, and the archive's account. Each step reports one line:
"created", "already there", "updated"."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from chat_tui.admin.api import AdminError, ManagementApi
from chat_tui.admin.deployments import foreign_deployments, other_namespaces
from chat_tui.protocol.ids import InvalidIdError, validate_id
from chat_tui.protocol.names import Names
from chat_tui.protocol.permissions import (
    AccountPermissions,
    TopicPermissions,
    VhostPermissions,
    archive_login,
    archive_permissions,
    chat_user_permissions,
    is_archive_login,
)
from chat_tui.protocol.queues import (
    QueueSpec,
    QueueType,
    Topology,
    archive_topology,
    personal_topology,
    shared_topology,
)

Report = Callable[[str], None]
"""Where a step's line goes (stdout in the CLI)."""

IMPERSONATOR = "impersonator"


def new_password() -> str:
    return secrets.token_urlsafe(24)


def user_id_of(name: str) -> str:
    try:
        return validate_id(name, "user ID")
    except InvalidIdError as exc:
        raise AdminError(str(exc)) from None


def tags_of(account: Mapping[str, Any]) -> list[str]:
    """An account's tags: a list since RabbitMQ 3.9, a comma-separated string before."""
    tags = account.get("tags") or []
    if isinstance(tags, str):
        return [tag for tag in tags.split(",") if tag]
    return [str(tag) for tag in tags]


def _same_arguments(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return dict(found) == dict(wanted)


def _type_of(queue: QueueSpec) -> str:
    return str(queue.arguments.get("x-queue-type", "classic"))


class Provisioner:
    """The write side of `chat-tui admin`, on one vhost and namespace; its queues are
    declared with the deployment's `queue_type`."""

    def __init__(
        self,
        api: ManagementApi,
        names: Names,
        report: Report,
        queue_type: QueueType = "classic",
    ) -> None:
        self.api = api
        self.names = names
        self.report = report
        self.queue_type: QueueType = queue_type

    async def init(self) -> None:
        """The shared exchanges and queues and the archive's, then warnings about risky
        accounts. The archive's account configures nothing, so its queues are made here."""
        await self.api.check_vhost()
        await self.apply(shared_topology(self.names, self.queue_type))
        await self.apply(archive_topology(self.names, self.queue_type))
        others = other_namespaces(
            self.names, ((found["name"], found["type"]) for found in await self.api.exchanges())
        )
        if others:
            self.report(
                f"warning: the vhost {self.api.vhost} also holds the namespace "
                f"{', '.join(others)}: accounts belong to the whole broker and each has one "
                "entry of rights per vhost, so two namespaces on one vhost take each other's "
                "users' rights away; give each deployment a vhost of its own"
            )
        for account in await self.api.users():
            name = account["name"]
            if name == "guest":
                self.report(
                    "warning: the guest account exists; delete it on a shared broker "
                    "('rabbitmqctl delete_user guest') unless it is kept loopback-only"
                )
            if IMPERSONATOR in tags_of(account):
                self.report(
                    f"warning: {name} has the impersonator tag: it can publish in anyone's name"
                )

    async def apply(self, topology: Topology) -> None:
        for exchange in topology.exchanges:
            found = await self.api.exchange(exchange.name)
            if found is None:
                await self.api.put_exchange(exchange)
                self.report(f"exchange {exchange.name} ({exchange.type}): created")
            elif found.get("type") != exchange.type or found.get("durable") != exchange.durable:
                raise AdminError(
                    f"exchange {exchange.name} exists as a {found.get('type')} exchange "
                    f"(durable {found.get('durable')}), not a durable {exchange.type} one: "
                    "delete it and run this again"
                )
            else:
                self.report(f"exchange {exchange.name}: already there")
        for queue in topology.queues:
            found = await self.api.queue(queue.name)
            if found is None:
                await self.api.put_queue(queue)
                self.report(f"queue {queue.name}: created")
            elif found.get("type", "classic") != _type_of(queue):
                raise AdminError(
                    f"queue {queue.name} is a {found.get('type')} queue, but this deployment's "
                    f"queue_type is {_type_of(queue)}: set queue_type to {found.get('type')} "
                    "(config.toml or CHAT_TUI_QUEUE_TYPE) to match the deployment; a queue "
                    "cannot change type"
                )
            elif not _same_arguments(found.get("arguments") or {}, queue.arguments):
                raise AdminError(
                    f"queue {queue.name} exists with the arguments {found.get('arguments')}, "
                    f"not {dict(queue.arguments)}: clients would fail with PRECONDITION_FAILED; "
                    "delete it (its messages go with it) and run this again"
                )
            else:
                self.report(f"queue {queue.name}: already there")
        for binding in topology.bindings:
            what = f"binding {binding.exchange} -> {binding.queue} ({binding.routing_key or '-'})"
            if await self.api.binding_exists(binding):
                self.report(f"{what}: already there")
            else:
                await self.api.add_binding(binding)
                self.report(f"{what}: created")

    async def add_user(self, name: str, password: str | None) -> None:
        """The account (a generated password is printed once), its queues and rights."""
        user_id = user_id_of(name)
        await self.api.check_vhost()
        await self._require_init()
        await self._account(user_id, password, self._refuse_to_take_over)
        await self.apply(personal_topology(self.names, user_id, self.queue_type))
        await self.grant(user_id, chat_user_permissions(self.names, user_id))

    async def add_archive(self, password: str | None) -> None:
        """The archive's account (a generated password is printed once) with exactly
        `archive_permissions()`; every worker of the deployment logs in with it."""
        login = archive_login(self.names)
        await self.api.check_vhost()
        await self._require_init(self.names.archive_queue, self.names.archive_requests_queue)
        await self._account(login, password, self._refuse_to_take_over_for_the_archive)
        await self.grant(login, archive_permissions(self.names))

    async def _require_init(self, *queues: str) -> None:
        """`chat-tui admin init` has made NS.messages, and `queues`."""
        missing = [f"the queue {queue}" for queue in queues if await self.api.queue(queue) is None]
        if await self.api.exchange(self.names.messages_exchange) is None:
            missing.insert(0, f"the exchange {self.names.messages_exchange}")
        if missing:
            raise AdminError(f"{missing[0]} does not exist: run 'chat-tui admin init' first")

    async def _account(
        self,
        login: str,
        password: str | None,
        refuse: Callable[[str, Mapping[str, Any]], Awaitable[None]],
    ) -> None:
        """Create `login` without tags, or keep it (and its password) once `refuse`
        has found nothing against taking it over."""
        account = await self.api.user(login)
        if account is None:
            chosen = password or new_password()
            await self.api.put_user(login, chosen, tags=[])
            self.report(f"account {login}: created")
            if password is None:
                self.report(f"password of {login} (shown once): {chosen}")
        else:
            await refuse(login, account)
            self.report(
                f"account {login}: already there (password unchanged; "
                f"'chat-tui admin passwd {login}' sets a new one)"
            )

    async def grant(self, user_id: str, wanted: AccountPermissions) -> None:
        found = await self.api.user_permissions(user_id)
        vhost = self.api.vhost
        current = None if found is None else (found["configure"], found["write"], found["read"])
        if current == (wanted.vhost.configure, wanted.vhost.write, wanted.vhost.read):
            self.report(f"permissions of {user_id} on vhost {vhost}: already there")
        else:
            await self.api.put_permissions(user_id, wanted.vhost)
            done = "set" if found is None else "updated"
            self.report(f"permissions of {user_id} on vhost {vhost}: {done}")
        entries = await self.api.user_topic_permissions(user_id)
        expected = {
            "exchange": wanted.topic.exchange,
            "write": wanted.topic.write,
            "read": wanted.topic.read,
        }
        if [{key: entry.get(key) for key in expected} for entry in entries] == [expected]:
            self.report(f"topic permissions of {user_id}: already there")
            return
        if entries:
            # Entries on other exchanges would be rights the protocol does not give.
            await self.api.delete_topic_permissions(user_id)
        await self.api.put_topic_permissions(user_id, wanted.topic)
        self.report(f"topic permissions of {user_id}: {'updated' if entries else 'set'}")

    async def _refuse_to_take_over(self, user_id: str, account: Mapping[str, Any]) -> None:
        """add-user makes and repairs chat users; an existing account that is something
        else would lose its own rights on the vhost to a chat user's."""
        self._refuse_the_admin_login(user_id)
        tags = tags_of(account)
        if tags:
            raise AdminError(
                f"{user_id} is an existing account with the tags {', '.join(tags)}: chat "
                "users have none, and add-user would replace its rights on the vhost "
                f"{self.api.vhost}; choose another user ID"
            )
        await self._refuse_another_deployments(user_id)

    async def _refuse_to_take_over_for_the_archive(
        self, login: str, account: Mapping[str, Any]
    ) -> None:
        self._refuse_the_admin_login(login)
        tags = tags_of(account)
        if tags:
            raise AdminError(
                f"{login} is an existing account with the tags {', '.join(tags)}: the "
                "archive's account has none; remove the tags or the account, then run "
                "this again"
            )

    def _refuse_the_admin_login(self, user_id: str) -> None:
        if user_id == self.api.login:
            raise AdminError(
                f"{user_id} is the login of the admin URL: chat users need accounts of "
                "their own, and this one would lose its rights on the vhost "
                f"{self.api.vhost}"
            )

    async def _refuse_another_deployments(self, user_id: str) -> None:
        found = await self.api.user_permissions(user_id)
        rights = (
            None
            if found is None
            else VhostPermissions(found["configure"], found["write"], found["read"])
        )
        topic = [
            TopicPermissions(entry["exchange"], entry["write"], entry["read"])
            for entry in await self.api.user_topic_permissions(user_id)
        ]
        elsewhere = foreign_deployments(self.names, user_id, rights, topic)
        if elsewhere:
            raise AdminError(
                f"{user_id} already has rights on vhost {self.api.vhost} for another "
                f"deployment ({'; '.join(elsewhere)}); one vhost holds one accounts "
                "deployment: give this namespace a vhost of its own"
            )

    async def _close_connections(self, user_id: str) -> None:
        """RabbitMQ keeps connections opened before a new password or a deleted account:
        a leaked login would stay on as a consumer of the inbox."""
        count = await self.api.user_connections(user_id)
        if count:
            try:
                await self.api.close_user_connections(user_id)
            except AdminError:
                # The broker closes a deleted account's connections itself, and a close
                # that races with it fails (500): what matters is that none is left.
                await asyncio.sleep(0.5)
                if await self.api.user_connections(user_id):
                    raise
        self.report(f"connections of {user_id}: {f'{count} closed' if count else 'none open'}")

    async def remove_user(self, name: str) -> None:
        user_id = user_id_of(name)
        await self.api.check_vhost()
        self._refuse_the_admin_login(user_id)
        await self._refuse_another_deployments(user_id)
        gone = await self.api.delete_user(user_id)
        self.report(f"account {user_id}: {'deleted' if gone else 'not there'}")
        await self._close_connections(user_id)
        for queue in (self.names.inbox_queue(user_id), self.names.receipts_queue(user_id)):
            gone = await self.api.delete_queue(queue)
            self.report(f"queue {queue}: {'deleted' if gone else 'not there'}")

    async def passwd(self, name: str, password: str | None) -> None:
        """A chat user's or the archive's new password."""
        archive = is_archive_login(self.names, name)
        user_id = name if archive else user_id_of(name)
        account = await self.api.user(user_id)
        if account is None:
            adding = "add-archive" if archive else f"add-user {user_id}"
            raise AdminError(f"there is no account {user_id}: 'chat-tui admin {adding}' creates it")
        chosen = password or new_password()
        # PUT replaces the whole account: keep its tags as they are (check reports them).
        await self.api.put_user(user_id, chosen, tags=tags_of(account))
        self.report(f"password of {user_id}: updated")
        if password is None:
            self.report(f"new password of {user_id} (shown once): {chosen}")
        await self._close_connections(user_id)
