"""`Store`: the per-user cache as one object. Each method is one trip to the SQLite
thread (or none, for the few messages that may commit on the event loop: database.py),
and each write one transaction, composed from the table modules beside this one
(which take the connection, so that a transaction can span them). What to decide (which
receipts, mentions, statuses) comes from the `CachePolicy` the client core hands in."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import DirectoryEvent, ReceiveMessage, SendMessage, utc_now
from chat_tui.protocol.outgoing import Outgoing
from chat_tui.store import backfill, conversations, directory, ingest, meta, outbox
from chat_tui.store import messages as message_rows
from chat_tui.store import receipts as receipt_rows
from chat_tui.store import search as local_search
from chat_tui.store.backfill import ArchivePosition
from chat_tui.store.database import SMALL_BATCH, Database
from chat_tui.store.policy import CachePolicy, ReceiptToQueue
from chat_tui.store.records import (
    ConversationSummary,
    IngestResult,
    MemberReceipt,
    OutboxItem,
    ReceiptsApplied,
    StatusChange,
    StoredMessage,
)
from chat_tui.store.schema import migrate
from chat_tui.store.timestamps import iso


class Store:
    """The cache of user `me`, in the file at `path`; `await open()` before use. The
    parts built on it can be wired up before the file is opened."""

    def __init__(self, path: Path, me: str, policy: CachePolicy) -> None:
        self._db = Database(path)
        self.me = me
        self._policy = policy

    async def open(self) -> None:
        """Open the file and bring its schema up to date; raises StoreError."""
        try:
            await self._db.open(migrate)
        except BaseException:
            await self._db.close()
            raise

    @property
    def path(self) -> Path:
        return self._db.path

    async def close(self) -> None:
        await self._db.close()

    async def sync(self) -> None:
        """Make every commit so far survive a power cut."""
        await self._db.sync()

    # --- send path -------------------------------------------------------------------

    async def enqueue_message(
        self, message: SendMessage, *, refuse_unknown_user: bool = True, durable: bool = True
    ) -> tuple[StoredMessage, OutboxItem]:
        """Check that the message can go where it is addressed, then write it to the
        outbox and the messages table, all in one transaction (one trip to the SQLite
        thread on the sender's path). Raises SendRefused.

        A direct message to a user the directory does not know is refused only with
        `refuse_unknown_user` (offline, the directory may be behind). With
        `durable=False` the caller syncs with `sync()` (while the publish is on its
        way)."""
        conversation = Conversation.of_message(message, self.me)
        out = Outgoing.chat(message)
        message_id = str(message.message_id)
        sent_at = iso(message.timestamp)

        def work(conn: sqlite3.Connection) -> tuple[StoredMessage, OutboxItem]:
            recipients = directory.recipients_or_refuse(
                conn, message, self.me, refuse_unknown_user=refuse_unknown_user
            )
            conversations.ensure(conn, conversation.key)
            outbox_seq = outbox.enqueue(conn, "message", out, None)
            seq = message_rows.insert_own(
                conn,
                message_id=message_id,
                conversation_key=conversation.key,
                sender_id=message.sender_id,
                content=message.content,
                sent_at=sent_at,
                stored_at=iso(utc_now()),
                recipients=recipients,
            )
            # Sending is reading: everything before an own message counts as read.
            conversations.read_by_sending(conn, conversation.key, seq, sent_at)
            stored = StoredMessage(
                seq=seq,
                message_id=message_id,
                conversation=conversation,
                sender_id=message.sender_id,
                content=message.content,
                sent_at=message.timestamp,
                outgoing=True,
                status="queued",
                recipient_count=len(recipients),
            )
            item = OutboxItem(
                seq=outbox_seq,
                kind="message",
                routing_key=out.routing_key,
                message_type=out.message_type,
                amqp_message_id=out.amqp_message_id,
                body=out.body,
                attempts=0,
            )
            return stored, item

        # One message: on the event loop when the SQLite thread is idle (database.py).
        return await self._db.transaction(work, durable=durable, small=True)

    async def enqueue_directory(self, event: DirectoryEvent) -> None:
        await self._db.transaction(
            lambda conn: outbox.enqueue(conn, "directory", Outgoing.directory(event), None)
        )

    async def outbox(self, limit: int = 100) -> list[OutboxItem]:
        """The oldest `limit` rows waiting to be published, in order."""
        return await self._db.run(lambda conn: outbox.oldest(conn, limit))

    async def outbox_size(self) -> int:
        """Every row waiting: chat messages, receipts and directory events."""
        return await self._db.run(outbox.size)

    async def pending_messages(self) -> int:
        """Own chat messages still waiting in the outbox (not receipts)."""
        return await self._db.run(outbox.pending_messages)

    async def confirm_published(self, items: Sequence[OutboxItem]) -> list[StatusChange]:
        """The broker confirmed these: drop them from the outbox, mark messages sent."""

        def work(conn: sqlite3.Connection) -> list[StatusChange]:
            sent: list[str] = []
            for item in items:
                outbox.remove_published(conn, item)
                if item.kind == "message" and message_rows.mark_sent(conn, item.amqp_message_id):
                    sent.append(item.amqp_message_id)
            return [StatusChange.of(m) for m in message_rows.by_ids(conn, sent)]

        # Not durable by itself: losing it in a power cut only publishes these again
        # with the same message IDs, and receivers deduplicate. The next durable commit
        # syncs it.
        return await self._db.transaction(work, durable=False, small=len(items) <= SMALL_BATCH)

    async def fail_outgoing(self, item: OutboxItem, reason: str) -> StatusChange | None:
        """The broker returned it (nobody to route to): it will never go out."""

        def work(conn: sqlite3.Connection) -> StatusChange | None:
            outbox.remove(conn, item)
            if item.kind != "message":
                return None
            message_rows.mark_failed(conn, item.amqp_message_id, reason)
            found = message_rows.by_ids(conn, [item.amqp_message_id])
            return StatusChange.of(found[0]) if found else None

        return await self._db.transaction(work)

    async def record_attempt(self, items: Sequence[OutboxItem], error: str) -> None:
        await self._db.transaction(lambda conn: outbox.record_attempt(conn, items, error))

    # --- receive path ----------------------------------------------------------------

    async def store_incoming(
        self, messages: Sequence[SendMessage], send_delivered: bool = True, durable: bool = True
    ) -> IngestResult:
        """Store a batch, skipping message IDs already known, and queue the
        cumulative `delivered` receipts for it in the same transaction.

        With `durable=False` the commit skips the fsync; the caller must then call
        `mark_shown(..., then_sync=True)` before it acks the batch to the broker."""
        # See chat_tui/store/ingest.py for how the work is split around the one trip.
        incoming = ingest.prepare(messages, self.me, self._policy.mentions_me)

        def work(conn: sqlite3.Connection) -> tuple[ingest.StoredBatch, list[StoredMessage]]:
            stored = ingest.store(conn, incoming)
            if send_delivered:
                for (sender, key), message_id in stored.latest_from.items():
                    self._queue_receipt(
                        conn, self._policy.receipt("delivered", sender, key, message_id)
                    )
            unshown = message_rows.by_seqs(conn, stored.unshown) if stored.unshown else []
            return stored, unshown

        stored, unshown = await self._db.transaction(
            work, durable=durable, small=len(messages) <= SMALL_BATCH
        )
        new = ingest.new_messages(incoming, stored)
        return IngestResult(
            new_messages=new,
            to_show=unshown + new if unshown else new,
            duplicates=len(messages) - len(new),
        )

    def mark_shown(self, seqs: Sequence[int], *, then_sync: bool = False) -> asyncio.Future[None]:
        """The sink has shown these; a redelivery will not show them again.

        Queued for the SQLite thread at once, before whatever the caller queues next
        (so the next batch's store sees these marks), without waiting for it; await the
        future for the outcome. `then_sync` also makes every earlier commit durable, in
        the same hop."""
        if not seqs and not then_sync:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        # No transaction and no sync of its own: losing a mark in a crash or a power cut
        # only shows a message twice.
        return self._db.autocommit(
            lambda conn: message_rows.mark_shown(conn, seqs), sync_after=then_sync
        )

    async def mark_read(
        self, conversation: Conversation, up_to_seq: int, send_receipts: bool = True
    ) -> int:
        """Everything up to `up_to_seq` was shown; queue one `read` receipt per sender.
        Returns the number of receipts queued."""
        key = conversation.key

        def work(conn: sqlite3.Connection) -> int:
            moved = conversations.mark_read(conn, key, up_to_seq)
            if moved is None or not send_receipts:
                return 0
            previous, up_to = moved
            latest = message_rows.latest_per_sender(conn, key, previous, up_to)
            for sender, message_id in latest:
                self._queue_receipt(conn, self._policy.receipt("read", sender, key, message_id))
            return len(latest)

        return await self._db.transaction(work)

    @staticmethod
    def _queue_receipt(conn: sqlite3.Connection, receipt: ReceiptToQueue) -> None:
        outbox.enqueue(conn, "receipt", receipt.outgoing, receipt.coalesce_key)

    async def apply_receipts(self, receipts: Sequence[ReceiveMessage]) -> ReceiptsApplied:
        """Fold cumulative receipts for own messages into per-member marks and statuses.
        A receipt counts only from someone its message was sent to."""

        def work(conn: sqlite3.Connection) -> ReceiptsApplied:
            touched: set[int] = set()
            not_recipients: list[ReceiveMessage] = []
            for receipt in receipts:
                try:
                    touched.update(receipt_rows.fold(conn, receipt, self.me))
                except receipt_rows.NotARecipient:
                    not_recipients.append(receipt)
            changes: list[StatusChange] = []
            for message in message_rows.by_seqs(conn, sorted(touched)):
                status = self._policy.status_after_receipts(message)
                if status != message.status:
                    message_rows.set_status(conn, message.seq, status)
                changes.append(StatusChange.of(replace(message, status=status)))
            return ReceiptsApplied(changes, not_recipients)

        return await self._db.transaction(work)

    async def receipt_details(self, message_id: str) -> list[MemberReceipt]:
        """Who of its recipients received and read an own message, and when (from the
        receipt log)."""
        return await self._db.run(lambda conn: receipt_rows.details(conn, message_id))

    # --- reading ---------------------------------------------------------------------

    async def conversations(self) -> list[ConversationSummary]:
        return await self._db.run(lambda conn: conversations.summaries(conn, self.me))

    async def history(
        self,
        conversation: Conversation,
        *,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[StoredMessage]:
        """A page of a conversation in ascending order: the newest `limit` before
        `before_seq`, or the oldest `limit` after `after_seq`."""
        return await self._db.run(
            lambda conn: message_rows.page(conn, conversation, before_seq, after_seq, limit)
        )

    async def message_count(self, conversation: Conversation) -> int:
        return await self._db.run(lambda conn: message_rows.count(conn, conversation))

    async def get_message(self, message_id: str) -> StoredMessage | None:
        found = await self._db.run(lambda conn: message_rows.by_ids(conn, [message_id]))
        return found[0] if found else None

    # --- history from the archive, and search (store/backfill.py, store/search.py) ---

    async def store_archived(
        self,
        messages: Sequence[SendMessage],
        *,
        position: tuple[Conversation, ArchivePosition] | None = None,
    ) -> dict[Conversation, int]:
        """Store messages from the archive (read, shown, never receipted, in their place
        in each conversation), skipping those cached; with `position`, record how far
        back that conversation has been read, in the same transaction. Returns how many
        were new per conversation."""
        incoming = ingest.prepare(messages, self.me, lambda _text: False)

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            counts = backfill.store(conn, incoming)
            if position is not None:
                backfill.set_position(conn, position[0].key, position[1])
            return counts

        # Not durable by itself: a backfill lost in a power cut is asked for again.
        counts = await self._db.transaction(work, durable=False)
        return {Conversation.parse(key): count for key, count in counts.items()}

    async def archive_position(self, conversation: Conversation) -> ArchivePosition:
        return await self._db.run(lambda conn: backfill.position(conn, conversation.key))

    async def search(
        self, text: str, conversation: Conversation | None, limit: int
    ) -> list[local_search.LocalHit]:
        key = None if conversation is None else conversation.key
        return await self._db.run(lambda conn: local_search.search(conn, text, key, limit))

    async def messages_by_id(self, message_ids: Sequence[str]) -> list[StoredMessage]:
        """Those of `message_ids` that are cached, in seq order."""
        return await self._db.run(lambda conn: message_rows.by_ids(conn, message_ids))

    async def has_messages(self) -> bool:
        return await self._db.run(
            lambda conn: conn.execute("SELECT 1 FROM messages LIMIT 1").fetchone() is not None
        )

    # --- directory -------------------------------------------------------------------

    async def apply_directory(self, events: Sequence[DirectoryEvent]) -> bool:
        """Fold directory events in stream order; whether anything changed."""
        return await self._db.transaction(lambda conn: directory.apply(conn, events, self.me))

    async def users(self) -> list[str]:
        return await self._db.run(directory.users)

    async def groups(self) -> list[str]:
        return await self._db.run(directory.groups)

    async def members(self, group_id: str) -> list[str]:
        return await self._db.run(lambda conn: directory.members(conn, group_id))

    async def groups_of(self, user_id: str) -> list[str]:
        return await self._db.run(lambda conn: directory.groups_of(conn, user_id))

    # --- meta ------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        return await self._db.run(lambda conn: meta.get(conn, key))

    async def set_meta(self, key: str, value: str) -> None:
        await self._db.transaction(lambda conn: meta.put(conn, key, value))
