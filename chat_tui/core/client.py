"""ChatClient: the one object both faces drive.

It owns the store, the transport and the background tasks, and it is the only place
that knows the order of things: store first, then publish; store and show, then ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from chat_tui.config import Settings
from chat_tui.core.cache_policy import open_cache
from chat_tui.core.cache_view import CacheView
from chat_tui.core.directory import DirectoryFollower
from chat_tui.core.errors import (
    ChatError,
    InvalidInputError,
    NotAMemberError,
    OfflineError,
    StorageError,
    UnknownGroupError,
    UnknownUserError,
)
from chat_tui.core.outbox import OutboxPublisher
from chat_tui.core.receipts import ReceiptIntake
from chat_tui.core.receiver import InboxPipeline
from chat_tui.core.sink import Sink
from chat_tui.core.status import ClientStatus, ConnectionState
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.ids import InvalidIdError, new_message_id, validate_id
from chat_tui.protocol.models import DirectoryEvent, DirectoryEventKind, SendMessage
from chat_tui.protocol.names import Names
from chat_tui.store import SendRefused, Store
from chat_tui.store.database import StoreError
from chat_tui.store.records import SendRefusal, StatusChange, StoredMessage
from chat_tui.transport.connection import (
    AuthenticationRefused,
    BrokerUnreachable,
    InboxAtConnect,
    LinkState,
    LinkStatus,
    Transport,
)

log = logging.getLogger(__name__)

MAX_CONNECT_BACKOFF = 30.0


def check_text(text: str) -> str:
    """The content rules of the protocol, as a user-facing error."""
    try:
        SendMessage(message_id=uuid.uuid4(), sender_id="x", recipient_id="x", content=text)
    except ValidationError as exc:
        raise InvalidInputError(
            f"cannot send: {exc.errors()[0]['msg'].removeprefix('Value error, ')}"
        ) from None
    return text


class ChatClient:
    """A chat-tui client for one user. Use `async with ChatClient(settings, sink)`."""

    def __init__(
        self, settings: Settings, sink: Sink | None = None, *, receive_messages: bool = True
    ) -> None:
        self.settings = settings
        # Commands that show nothing (send, join, ...) must not consume the inbox: they
        # would ack messages that no face ever showed to the user.
        self.receive_messages = receive_messages
        self.me = settings.user
        self.sink: Sink = sink or Sink()
        self.names = Names(settings.namespace)
        self.transport = Transport(
            settings.amqp_url,
            self.names,
            self.me,
            heartbeat=settings.heartbeat,
            confirm_timeout=settings.confirm_timeout,
            reconnect_interval=settings.reconnect_interval,
        )
        self.transport.on_status = self._set_link
        self.transport.on_reconnected = self._on_reconnected
        self._store: Store | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._online = asyncio.Event()
        # Online means "consuming and following the directory", not merely connected:
        # set only once _on_connected has finished the first time.
        self._ready = False
        self._pipelines_running = False
        self._first_attempt = asyncio.Event()
        self._fatal: str | None = None
        self._outbox_size = 0
        self._standby = False
        self._sent_waiters: dict[str, asyncio.Future[StatusChange]] = {}
        self._link = LinkStatus(LinkState.CONNECTING)
        self.status = ClientStatus(ConnectionState.CONNECTING)
        self.inbox: InboxPipeline | None = None
        self.receipts: ReceiptIntake | None = None
        self.directory: DirectoryFollower | None = None
        self.outbox: OutboxPublisher | None = None

    # --- life cycle ------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the client is not started")
        return self._store

    @property
    def cache(self) -> CacheView:
        """What the faces read from the cache."""
        return CacheView(self.store)

    async def __aenter__(self) -> ChatClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self, *, connect: bool = True) -> None:
        """Open the cache (history is readable at once), then connect in the background."""
        try:
            self._store = await open_cache(self.settings.database_path, self.me)
        except StoreError as exc:
            raise StorageError(str(exc)) from None
        store = self._store
        self.inbox = InboxPipeline(
            store,
            self.sink,
            send_delivered=True,
            on_stored=self._wake_outbox_soon,
            on_first_delivery=self._left_standby,
        )
        self.receipts = ReceiptIntake(store, self.sink)
        self.directory = DirectoryFollower(store, self._on_directory_change)
        self.outbox = OutboxPublisher(
            store,
            self.transport,
            on_changes=self._on_status_changes,
            on_failed=self._on_send_failed,
            on_drained=self._on_outbox_drained,
        )
        self._outbox_size = await store.pending_messages()
        self._publish_status()
        self._spawn(self.outbox.run())
        if connect:
            self._spawn(self._connect_loop())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.transport.close()
        if self._store is not None:
            await self._store.close()
            self._store = None

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task in self._tasks and task.done():
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())
            self.sink.problem(f"internal error: {task.exception()}")

    async def _connect_loop(self) -> None:
        delay = self.settings.reconnect_interval
        while True:
            try:
                inbox = await self.transport.connect()
            except AuthenticationRefused as exc:
                self._fatal = str(exc)
                self._set_link(LinkStatus(LinkState.OFFLINE, error=str(exc)))
                self.sink.problem(str(exc))
                self._first_attempt.set()
                return
            except BrokerUnreachable as exc:
                retry = datetime.now(UTC) + timedelta(seconds=delay)
                self._set_link(LinkStatus(LinkState.OFFLINE, next_retry_at=retry, error=str(exc)))
                self._first_attempt.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_CONNECT_BACKOFF)
                continue
            try:
                await self._on_connected(inbox)
            except Exception as exc:
                # The link died while the consumers were being set up. Without this the
                # loop would end and leave a client with no consumers for good.
                log.warning("connection lost while starting consumers: %r", exc)
                await self.transport.drop()
                retry = datetime.now(UTC) + timedelta(seconds=delay)
                self._set_link(LinkStatus(LinkState.OFFLINE, next_retry_at=retry, error=str(exc)))
                await asyncio.sleep(delay)
                continue
            self._first_attempt.set()
            return

    async def _on_connected(self, inbox: InboxAtConnect) -> None:
        assert self.inbox and self.receipts and self.directory
        self._standby = inbox.had_consumer
        if inbox.created:
            await self._announce("registered")
        self.directory.started()
        await self.transport.consume_directory(self.directory.on_delivery)
        await self.transport.consume_receipts(self.receipts.on_delivery)
        if self.receive_messages:
            await self.transport.consume_inbox(self.inbox.on_delivery)
        if not self._pipelines_running:
            self._pipelines_running = True
            self._spawn(self.directory.run())
            self._spawn(self.receipts.run())
            if self.receive_messages:
                self._spawn(self.inbox.run())
            self._spawn(self._heal_registration())
        self._ready = True
        if self.transport.online:
            self._online.set()
        self._publish_status()
        self._retry_outbox_now()

    async def _heal_registration(self) -> None:
        # If a crash came between creating the inbox and queueing `registered`.
        assert self.directory is not None
        if (
            await self.directory.wait_caught_up(10.0)
            and self.me not in await self.store.users()
            and not await self.store.outbox_size()
        ):
            await self._announce("registered")

    async def _on_reconnected(self) -> None:
        self._retry_outbox_now()

    # --- status ----------------------------------------------------------------------

    def _set_link(self, link: LinkStatus) -> None:
        if link.state is LinkState.ONLINE and self._ready:
            self._online.set()
        else:
            self._online.clear()
        self._link = link
        self._publish_status()

    def _publish_status(self) -> None:
        link = self._link
        self.status = ClientStatus(
            state=ConnectionState(link.state.value),
            next_retry_at=link.next_retry_at,
            error=link.error or self._fatal,
            unsent_messages=self._outbox_size,
            standby=self._standby,
        )
        self.sink.connection_changed(self.status)

    def _left_standby(self) -> None:
        if self._standby:
            self._standby = False
            self._publish_status()

    async def _refresh_outbox_size(self) -> None:
        if self._store is None:
            return
        size = await self._store.pending_messages()
        if size != self._outbox_size:
            self._outbox_size = size
            self._publish_status()

    def _on_outbox_drained(self) -> None:
        # Only own chat messages count as "queued" for the user; a drained outbox of
        # receipts needs no recount.
        if self._outbox_size:
            self._spawn(self._refresh_outbox_size())

    def _wake_outbox(self) -> None:
        if self.outbox is not None:
            self.outbox.wake()

    def _retry_outbox_now(self) -> None:
        if self.outbox is not None:
            self.outbox.retry_now()

    def _wake_outbox_soon(self) -> None:
        if self.outbox is not None:
            self.outbox.wake_soon()

    def _on_status_changes(self, changes: Sequence[StatusChange]) -> None:
        for change in changes:
            waiter = self._sent_waiters.pop(change.message_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(change)
        self.sink.status_changed(changes)
        self._spawn(self._refresh_outbox_size())

    def _on_send_failed(self, change: StatusChange, reason: str) -> None:
        self._on_status_changes([change])
        self.sink.problem(f"message not sent: {reason}")

    def _on_directory_change(self) -> None:
        self.sink.directory_changed()

    @property
    def online(self) -> bool:
        return self._online.is_set()

    @property
    def fatal_error(self) -> str | None:
        """Set when retrying cannot help (refused credentials)."""
        return self._fatal

    async def wait_first_attempt(self, timeout: float | None = None) -> bool:
        """Wait for the first connection attempt to end; return whether it succeeded."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._first_attempt.wait()
        return self.online

    async def wait_online(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._online.wait()
        except TimeoutError:
            return False
        return True

    async def wait_directory(self, timeout: float = 10.0) -> bool:
        """Wait until the directory stream has been read to its current end."""
        if self.directory is None or not await self.wait_online(timeout):
            return False
        return await self.directory.wait_caught_up(timeout)

    # --- sending ---------------------------------------------------------------------

    async def send(self, conversation: Conversation, text: str) -> StoredMessage:
        """Validate, check the address and store in the outbox and the history, in one
        transaction; publish; return once the message is on disk. The status moves on
        through the sink.

        The commit is synced to disk while the publish is on its way rather than
        before it: the publish waits only for the commit (in the OS, it survives the
        process), not for the fsync, which is what sets a chat's latency on a laptop
        disk. Only a power cut in that millisecond can lose the sender's copy of a
        message that went out (docs/architecture.md, "The sender's fsync overlaps the
        publish")."""
        check_text(text)
        message = SendMessage(
            message_id=uuid.UUID(new_message_id()),
            sender_id=self.me,
            group_id=conversation.name if conversation.kind == "group" else None,
            recipient_id=conversation.name if conversation.kind == "dm" else None,
            content=text,
        )
        try:
            stored, item = await self.store.enqueue_message(
                message, refuse_unknown_user=self.online, durable=False
            )
        except SendRefused as refused:
            raise _refusal_error(refused) from None
        except StoreError as exc:
            raise StorageError(f"cannot save the message: {exc}") from None
        self._outbox_size += 1
        self._publish_status()
        if self.outbox is not None:
            self.outbox.hand(item)
        try:
            await self.store.sync()
        except StoreError as exc:
            # It is committed and on its way: raising would invite a second copy.
            log.error("syncing a sent message failed: %s", exc)
            self.sink.problem(f"your message is queued, but the disk sync failed: {exc}")
        return stored

    async def wait_sent(self, message_id: str, timeout: float | None = None) -> StatusChange:
        """Wait until the broker confirmed (or returned) a message."""
        # Register first, then look: a confirm that lands while we read the store must
        # not slip between the two.
        future = self._sent_waiters.setdefault(
            message_id, asyncio.get_running_loop().create_future()
        )
        current = await self.store.get_message(message_id)
        if not future.done() and current is not None and current.status != "queued":
            self._sent_waiters.pop(message_id, None)
            return StatusChange(
                current.message_id,
                current.conversation,
                current.status,
                current.delivered_count,
                current.read_count,
                current.recipient_count,
                current.error,
            )
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)

    async def mark_read(self, conversation: Conversation, up_to_seq: int) -> None:
        """The face showed everything up to `up_to_seq` in `conversation`."""
        queued = await self.store.mark_read(
            conversation, up_to_seq, send_receipts=self.settings.read_receipts
        )
        if queued:
            self._wake_outbox()

    # --- groups ----------------------------------------------------------------------

    async def _require_member(self, group_id: str) -> None:
        if self.me not in await self.store.members(group_id):
            if group_id not in await self.store.groups():
                raise UnknownGroupError(f"unknown group {group_id!r}")
            raise NotAMemberError(f"you are not a member of {group_id!r}; join it first")

    async def _require_online(self, what: str) -> None:
        if not self.online:
            raise OfflineError(f"cannot {what} while offline: {self.status.error or 'connecting'}")

    async def _announce(self, event: DirectoryEventKind, group_id: str | None = None) -> None:
        await self.store.enqueue_directory(
            DirectoryEvent(event=event, user_id=self.me, group_id=group_id)
        )
        self._wake_outbox()

    async def create_group(self, group_id: str) -> None:
        group_id = _group_id(group_id)
        await self._require_online("create a group")
        await self.wait_directory()
        if group_id in await self.store.groups():
            raise InvalidInputError(f"group {group_id!r} already exists; join it instead")
        await self.transport.bind_group(group_id)
        await self._announce("created", group_id)
        await self._announce("joined", group_id)
        await self.store.apply_directory(
            [
                DirectoryEvent(event=e, user_id=self.me, group_id=group_id)
                for e in ("created", "joined")
            ]
        )

    async def join_group(self, group_id: str) -> None:
        group_id = _group_id(group_id)
        await self._require_online("join a group")
        await self.wait_directory()
        if group_id not in await self.store.groups():
            raise UnknownGroupError(f"unknown group {group_id!r}; create it first")
        await self.transport.bind_group(group_id)
        await self._announce("joined", group_id)
        await self.store.apply_directory(
            [DirectoryEvent(event="joined", user_id=self.me, group_id=group_id)]
        )

    async def leave_group(self, group_id: str) -> None:
        group_id = _group_id(group_id)
        await self._require_online("leave a group")
        await self.wait_directory()
        await self._require_member(group_id)
        await self.transport.unbind_group(group_id)
        await self._announce("left", group_id)
        await self.store.apply_directory(
            [DirectoryEvent(event="left", user_id=self.me, group_id=group_id)]
        )

    async def my_groups(self) -> list[str]:
        return await self.store.groups_of(self.me)

    async def members(self, group_id: str) -> list[str]:
        group_id = _group_id(group_id)
        if group_id not in await self.store.groups():
            raise UnknownGroupError(f"unknown group {group_id!r}")
        return await self.store.members(group_id)

    async def outbox_backlog(self) -> int:
        """Rows still waiting in the outbox: own messages, receipts, directory events."""
        return await self.store.outbox_size()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until the outbox is empty (everything confirmed)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.store.outbox_size():
                    self._wake_outbox()
                    await asyncio.sleep(0.05)
        except TimeoutError:
            return False
        return True


def _group_id(value: str) -> str:
    try:
        return validate_id(value.removeprefix("#"), "group ID")
    except InvalidIdError as exc:
        raise InvalidInputError(str(exc)) from None


def _refusal_error(refused: SendRefused) -> ChatError:
    target = refused.target
    match refused.reason:
        case SendRefusal.UNKNOWN_USER:
            return UnknownUserError(f"unknown user {target!r}")
        case SendRefusal.UNKNOWN_GROUP:
            return UnknownGroupError(f"unknown group {target!r}")
        case SendRefusal.NOT_A_MEMBER:
            return NotAMemberError(f"you are not a member of {target!r}; join it first")
        case _:
            return ChatError(f"cannot send to {target!r}: {refused.reason.value}")
