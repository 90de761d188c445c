"""ChatClient: the one object both faces drive.

It builds the client's parts and is the only place that knows their order: the cache
opens first (history is readable offline), then the connector sets up the consumers;
sending stores first, then publishes. That order is why it is over 400 lines: the parts
with a job of their own (groups.py, history.py, the pipelines) have left it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence

from chat_tui.config import Settings
from chat_tui.core.background import BackgroundTasks
from chat_tui.core.cache_policy import cache_of
from chat_tui.core.cache_view import CacheView
from chat_tui.core.connector import Connector
from chat_tui.core.directory import DirectoryFollower
from chat_tui.core.errors import (
    CacheError,
    ChatError,
    InvalidInputError,
    NotAMemberError,
    UnknownGroupError,
    UnknownUserError,
)
from chat_tui.core.groups import GroupOperations
from chat_tui.core.history import History
from chat_tui.core.outbox import OutboxPublisher
from chat_tui.core.receipts import ReceiptIntake
from chat_tui.core.receiver import InboxPipeline
from chat_tui.core.records import StatusChange, StoredMessage
from chat_tui.core.sink import Sink
from chat_tui.core.status import ClientStatus, StatusBoard
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.ids import new_message_id
from chat_tui.protocol.models import (
    DirectoryEvent,
    DirectoryEventKind,
    SendMessage,
    content_problem,
)
from chat_tui.protocol.names import Names, directory_user_key
from chat_tui.store import SendRefused, Store
from chat_tui.store.database import StoreError
from chat_tui.store.records import SendRefusal
from chat_tui.transport.connection import InboxAtConnect, Transport
from chat_tui.transport.link import BrokerLink

log = logging.getLogger(__name__)


def check_text(text: str) -> str:
    """The protocol's content rule, as a user-facing error."""
    problem = content_problem(text)
    if problem is not None:
        raise InvalidInputError(f"cannot send: {problem}")
    return text


class ChatClient:
    """A chat-tui client for one user. Use `async with ChatClient(settings, sink)`."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink | None = None,
        *,
        receive_messages: bool = True,
        transport: BrokerLink | None = None,
    ) -> None:
        self.settings = settings
        # Commands that show nothing (send, join, ...) must not consume the inbox: they
        # would ack messages that no face ever showed to the user.
        self.receive_messages = receive_messages
        self.me = settings.user
        self.sink: Sink = sink or Sink()
        self.names = Names(settings.namespace)
        self._store = cache_of(settings.database_path, self.me)
        self.cache = CacheView(self._store)
        """What the faces read from the cache."""
        self._status = StatusBoard(self.sink.connection_changed)
        self.transport: BrokerLink = transport or Transport(
            settings.broker_urls,
            self.names,
            self.me,
            password=settings.broker_password,
            accounts_mode=settings.accounts_mode,
            tls_ca_file=settings.tls_ca_file,
            tls_insecure=settings.tls_insecure,
            queue_type=settings.queue_type,
            heartbeat=settings.heartbeat,
            confirm_timeout=settings.confirm_timeout,
            reconnect_interval=settings.reconnect_interval,
        )
        self.transport.on_status = self._status.link_changed
        self._cache_was_empty = False
        self.transport.on_reconnected = self._on_reconnected
        self._tasks = BackgroundTasks(self._background_task_failed)
        self._pipelines_running = False
        self._sent_waiters: dict[str, asyncio.Future[StatusChange]] = {}
        self.outbox = OutboxPublisher(
            self._store,
            self.transport,
            on_changes=self._on_status_changes,
            on_failed=self._on_send_failed,
            on_drained=self._on_outbox_drained,
        )
        self.inbox = InboxPipeline(
            self._store,
            self.sink,
            send_delivered=True,
            verify_senders=settings.accounts_mode,
            on_stored=self.outbox.receipts_queued,
            on_first_delivery=lambda: self._status.set_standby(False),
        )
        # In accounts mode each receiver checks that a delivery's `user_id` is the user
        # its body names (core/sender_checks.py); open mode shares one login.
        self.receipts = ReceiptIntake(self._store, self.sink, verify_senders=settings.accounts_mode)
        self.directory = DirectoryFollower(
            self._store, self.sink.directory_changed, verify_senders=settings.accounts_mode
        )
        self.history = History(
            settings,
            self._store,
            self.transport,
            self.names,
            self.sink,
            self._tasks,
            wait_directory=self.directory.wait_caught_up,
        )
        """Search, older pages and what the archive adds to the cache."""
        self._groups = GroupOperations(
            self.me,
            self._store,
            self.transport,
            self._status,
            announce=self._announce,
            wait_directory=self.wait_directory,
        )
        self._connector = Connector(
            self.transport,
            self._status,
            self._set_up_consumers,
            first_delay=settings.reconnect_interval,
            tell_user=self.sink.problem,
        )

    @property
    def store(self) -> Store:
        """The cache itself, for tests and benchmarks that look at what was stored. Faces
        read through `cache` and change things through the client's methods."""
        return self._store

    # --- life cycle ------------------------------------------------------------------

    async def __aenter__(self) -> ChatClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self, *, connect: bool = True) -> None:
        """Open the cache (history is readable at once), then connect in the background."""
        try:
            await self._store.open()
        except StoreError as exc:
            raise CacheError(str(exc)) from None
        self._cache_was_empty = not await self._store.has_messages()
        self._status.unsent_messages = await self._store.pending_messages()
        self._status.publish()
        self._tasks.spawn(self.outbox.run(), lasting=True)
        if connect:
            self._tasks.spawn(self._connector.run())

    async def stop(self) -> None:
        await self._tasks.stop()
        await self.history.close()
        with contextlib.suppress(Exception):
            await self.transport.close()
        await self._store.close()

    def _background_task_failed(self, error: BaseException) -> None:
        self.sink.problem(f"internal error: {error}")

    async def _set_up_consumers(self, inbox: InboxAtConnect) -> None:
        self._status.standby = inbox.had_consumer
        if inbox.created:
            await self._announce("registered")
        self.directory.started()
        first_connect = not self._pipelines_running
        if first_connect:
            # Before the first consume: a set-up that times out on a busy broker and is
            # tried again must not leave the directory it has read piling up unfolded.
            # And before the inbox is consumed: a fill below waits for the directory.
            self._pipelines_running = True
            self._tasks.spawn(self.directory.run(), lasting=True)
            self._tasks.spawn(self.receipts.run(), lasting=True)
            if self.receive_messages:
                self._tasks.spawn(self.inbox.run(), lasting=True)
            self._tasks.spawn(self._heal_registration())
        await self.transport.consume_directory(self.directory.on_delivery)
        await self.transport.consume_receipts(self.receipts.on_delivery)
        if self.receive_messages and first_connect and inbox.created and not self._cache_was_empty:
            # The inbox was gone (deleted, or never kept what came while we were away):
            # what was missed comes from the archive, before anything newer is stored
            # after it.
            await self.history.fill_conversations(
                every_dm=False, timeout=self.history.archive.timeout * 3
            )
        if self.receive_messages:
            await self.transport.consume_inbox(self.inbox.on_delivery)
        if self.receive_messages and first_connect and self._cache_was_empty:
            # A new device: its conversations come from the archive, own messages too. A
            # user whose inbox was made just now is new here, with no DM to look for.
            every_dm = not inbox.created
            self._tasks.spawn(self.history.fill_conversations(every_dm=every_dm, timeout=None))
        self._status.consumers_ready()
        self.outbox.link_restored()

    async def _heal_registration(self) -> None:
        # In accounts mode `chat-tui admin add-user` created the inbox, so no start finds
        # it new and this is how a user first registers. In open mode it covers a crash
        # between creating the inbox and queueing `registered`.
        if (
            await self.directory.wait_caught_up(10.0)
            and self.me not in await self._store.users()
            and not await self._registration_queued()
        ):
            await self._announce("registered")

    async def _registration_queued(self) -> bool:
        # Only `registered` goes out under the user's own directory key. Anything else
        # in the outbox (a message sent before the first start) must not hold it back.
        own_key = directory_user_key(self.me)
        return any(item.routing_key == own_key for item in await self._store.outbox(limit=1000))

    async def _on_reconnected(self) -> None:
        self.outbox.link_restored()

    # --- status ----------------------------------------------------------------------

    @property
    def status(self) -> ClientStatus:
        """What the face shows in its header; it also hears of every change."""
        return self._status.current

    @property
    def online(self) -> bool:
        return self._status.online

    @property
    def fatal_error(self) -> str | None:
        """Set when retrying cannot help: the broker refused us, and the text says what
        was refused and what to do."""
        return self._status.fatal_error

    async def wait_refused(self) -> str:
        """Wait until the broker refuses this client for good (at the first connection or
        later); return what was refused and what to do."""
        return await self._status.wait_refused()

    async def wait_first_attempt(self, timeout: float | None = None) -> bool:
        """Wait for the first connection attempt to end; return whether it succeeded."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._connector.first_attempt_ended.wait()
        return self.online

    async def wait_online(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._status.wait_online()
        except TimeoutError:
            return False
        return True

    async def wait_directory(self, timeout: float = 10.0) -> bool:
        """Wait until the directory stream has been read to its current end."""
        if not await self.wait_online(timeout):
            return False
        return await self.directory.wait_caught_up(timeout)

    async def _count_unsent(self) -> None:
        self._status.set_unsent(await self._store.pending_messages())

    def _on_outbox_drained(self) -> None:
        # Only own chat messages count as unsent for the user; a drained outbox of
        # receipts needs no recount.
        if self._status.unsent_messages:
            self._tasks.spawn(self._count_unsent())

    def _on_status_changes(self, changes: Sequence[StatusChange]) -> None:
        for change in changes:
            waiter = self._sent_waiters.pop(change.message_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(change)
        self.sink.status_changed(changes)
        self._tasks.spawn(self._count_unsent())

    def _on_send_failed(self, change: StatusChange, reason: str) -> None:
        self._on_status_changes([change])
        self.sink.problem(f"message not sent: {reason}")

    # --- sending ---------------------------------------------------------------------

    async def send(self, conversation: Conversation, text: str) -> StoredMessage:
        """Validate, check the address and store in the outbox and the history, in one
        transaction; publish; return once the message is on disk. The status moves on
        through the sink.

        The commit is synced to disk while the publish is on its way rather than
        before it (docs/architecture.md, "The sender's fsync overlaps the publish")."""
        check_text(text)
        message = SendMessage(
            message_id=uuid.UUID(new_message_id()),
            sender_id=self.me,
            group_id=conversation.name if conversation.kind == "group" else None,
            recipient_id=conversation.name if conversation.kind == "dm" else None,
            content=text,
        )
        try:
            stored, item = await self._store.enqueue_message(
                message, refuse_unknown_user=self.online, durable=False
            )
        except SendRefused as refused:
            raise _refusal_error(refused) from None
        except StoreError as exc:
            raise CacheError(f"cannot save the message: {exc}") from None
        self._status.set_unsent(self._status.unsent_messages + 1)
        self.outbox.publish_committed(item)
        try:
            await self._store.sync()
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
        current = await self._store.get_message(message_id)
        if not future.done() and current is not None and current.status != "queued":
            self._sent_waiters.pop(message_id, None)
            return StatusChange.of(current)
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)

    async def mark_read(self, conversation: Conversation, up_to_seq: int) -> None:
        """The face showed everything up to `up_to_seq` in `conversation`."""
        queued = await self._store.mark_read(
            conversation, up_to_seq, send_receipts=self.settings.read_receipts
        )
        if queued:
            self.outbox.rows_queued()

    async def outbox_backlog(self) -> int:
        """Rows still waiting in the outbox: own messages, receipts, directory events."""
        return await self._store.outbox_size()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until the outbox is empty (everything confirmed)."""
        try:
            async with asyncio.timeout(timeout):
                while await self._store.outbox_size():
                    await self.outbox.until_idle()
        except TimeoutError:
            return False
        return True

    # --- groups ----------------------------------------------------------------------

    async def _announce(self, event: DirectoryEventKind, group_id: str | None = None) -> None:
        await self._store.enqueue_directory(
            DirectoryEvent(event=event, user_id=self.me, group_id=group_id)
        )
        self.outbox.rows_queued()

    async def create_group(self, group_id: str) -> None:
        await self._groups.create(group_id)

    async def join_group(self, group_id: str) -> None:
        """Join; the group's recent history then comes from the archive in the background
        (`Sink.history_filled`), and a missing archive does not hold the join up."""
        await self._groups.join(group_id)
        self.history.joined(group_id)

    async def leave_group(self, group_id: str) -> None:
        await self._groups.leave(group_id)

    async def members(self, group_id: str) -> list[str]:
        return await self._groups.members(group_id)

    async def my_groups(self) -> list[str]:
        return await self._groups.mine()


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
