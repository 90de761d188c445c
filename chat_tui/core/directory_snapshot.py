"""The directory as it stands now, folded in memory: who registered and who is in which
group, for a look from outside a client that keeps no cache: read once from the stream's
first entry (`chat-tui admin users`), or kept up to date by a `DirectoryFollower` (the
archive, which answers only what the requester may read)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from chat_tui.config import Settings
from chat_tui.core.errors import ChatError
from chat_tui.core.sender_checks import directory_sender_problem
from chat_tui.protocol.models import DirectoryEvent, MalformedMessageError, decode
from chat_tui.protocol.names import Names
from chat_tui.transport.errors import TransportError
from chat_tui.transport.stream_reader import StreamEntry, read_stream

log = logging.getLogger(__name__)


class DirectoryUnreadable(ChatError):
    """The directory stream could not be read; the text says why and what to do."""


@dataclass
class DirectorySnapshot:
    users: set[str] = field(default_factory=set)
    groups: dict[str, set[str]] = field(default_factory=dict)
    """Each group's members now; like the client's cache, a membership stands whether or
    not the group's `created` was seen."""
    skipped: int = 0
    """Entries left out: malformed, of another type, or failing the sender checks."""

    def groups_of(self, user_id: str) -> list[str]:
        return sorted(group for group, members in self.groups.items() if user_id in members)

    def fold(self, event: DirectoryEvent) -> None:
        """The client's fold (store/directory.py `apply`): anyone named is a user,
        `created` names a group, `joined` and `left` set a membership; each event sets a
        fact, so the last event about it wins."""
        self.users.add(event.user_id)
        group = event.group_id
        if group is None:
            return
        if event.event == "created":
            self.groups.setdefault(group, set())
        elif event.event == "joined":
            self.groups.setdefault(group, set()).add(event.user_id)
        elif event.event == "left":
            self.groups.get(group, set()).discard(event.user_id)

    async def apply_directory(self, events: Sequence[DirectoryEvent]) -> bool:
        """The fold as `DirectoryFollower` applies it, for a snapshot kept up to date
        from the live stream (the archive's)."""
        for event in events:
            self.fold(event)
        return bool(events)


def fold_entries(entries: Iterable[StreamEntry], *, verify_senders: bool) -> DirectorySnapshot:
    """Entries in stream order, folded; `verify_senders` applies the accounts-mode check
    (`user_id` and routing key agree with the event) that the clients apply."""
    snapshot = DirectorySnapshot()
    for entry in entries:
        try:
            event = decode(entry.body)
        except MalformedMessageError as exc:
            log.info("skipping an invalid directory entry: %s", exc)
            snapshot.skipped += 1
            continue
        if not isinstance(event, DirectoryEvent):
            snapshot.skipped += 1
            continue
        if verify_senders and (
            problem := directory_sender_problem(entry.user_id, entry.routing_key, event)
        ):
            log.info("skipping a directory entry: %s", problem)
            snapshot.skipped += 1
            continue
        snapshot.fold(event)
    return snapshot


async def directory_snapshot(
    settings: Settings, *, verify_senders: bool, timeout: float = 10.0
) -> DirectorySnapshot:
    """The directory of `settings.namespace`, read with the login of `settings`.

    An administrator reads in open mode by the login rule, yet the deployment she
    manages may have accounts: so the caller says whether to verify senders, rather
    than `settings.accounts_mode`. Verifying makes the snapshot what clients see."""
    queue = Names(settings.namespace).directory_stream
    try:
        entries = await read_stream(
            settings.broker_url, settings.broker_password, queue, timeout=timeout
        )
    except TransportError as exc:
        raise DirectoryUnreadable(f"cannot read the directory: {exc}") from None
    return fold_entries(entries, verify_senders=verify_senders)
