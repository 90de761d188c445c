"""Group operations: create, join and leave, and who is in a group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from chat_tui.core.errors import InvalidInputError, NotAMemberError, OfflineError, UnknownGroupError
from chat_tui.core.status import StatusBoard
from chat_tui.protocol.ids import InvalidIdError, validate_id
from chat_tui.protocol.models import DirectoryEvent, DirectoryEventKind
from chat_tui.store import Store
from chat_tui.transport.link import BrokerLink


def parse_group_id(value: str) -> str:
    """A group ID as a user types it (`#devs` or `devs`), or InvalidInputError."""
    try:
        return validate_id(value.removeprefix("#"), "group ID")
    except InvalidIdError as exc:
        raise InvalidInputError(str(exc)) from None


class GroupOperations:
    """Each change binds or unbinds the inbox, then announces itself in the directory
    through the outbox and folds the same events into the cache at once, so that the
    face shows it before the directory stream brings it back."""

    def __init__(
        self,
        me: str,
        store: Store,
        transport: BrokerLink,
        status: StatusBoard,
        *,
        announce: Callable[[DirectoryEventKind, str | None], Awaitable[None]],
        wait_directory: Callable[[], Awaitable[bool]],
    ) -> None:
        self._me = me
        self._store = store
        self._transport = transport
        self._status = status
        self._announce = announce
        self._wait_directory = wait_directory

    async def create(self, group_id: str) -> None:
        group_id = parse_group_id(group_id)
        await self._ready_to_change("create a group")
        if group_id in await self._store.groups():
            raise InvalidInputError(f"group {group_id!r} already exists; join it instead")
        await self._transport.bind_group(group_id)
        await self._announce_and_fold(group_id, "created", "joined")

    async def join(self, group_id: str) -> None:
        group_id = parse_group_id(group_id)
        await self._ready_to_change("join a group")
        if group_id not in await self._store.groups():
            raise UnknownGroupError(f"unknown group {group_id!r}; create it first")
        await self._transport.bind_group(group_id)
        await self._announce_and_fold(group_id, "joined")

    async def leave(self, group_id: str) -> None:
        group_id = parse_group_id(group_id)
        await self._ready_to_change("leave a group")
        if self._me not in await self._store.members(group_id):
            if group_id not in await self._store.groups():
                raise UnknownGroupError(f"unknown group {group_id!r}")
            raise NotAMemberError(f"you are not a member of {group_id!r}; join it first")
        await self._transport.unbind_group(group_id)
        await self._announce_and_fold(group_id, "left")

    async def members(self, group_id: str) -> list[str]:
        group_id = parse_group_id(group_id)
        if group_id not in await self._store.groups():
            raise UnknownGroupError(f"unknown group {group_id!r}")
        return await self._store.members(group_id)

    async def mine(self) -> list[str]:
        return await self._store.groups_of(self._me)

    async def _ready_to_change(self, what: str) -> None:
        if not self._status.online:
            error = self._status.current.error or "connecting"
            raise OfflineError(f"cannot {what} while offline: {error}")
        await self._wait_directory()

    async def _announce_and_fold(self, group_id: str, *events: DirectoryEventKind) -> None:
        for event in events:
            await self._announce(event, group_id)
        await self._store.apply_directory(
            [DirectoryEvent(event=event, user_id=self._me, group_id=group_id) for event in events]
        )
