"""The Store: every read and write of the per-user cache, each write one transaction."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple
from uuid import UUID

from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import DirectoryEvent, ReceiveMessage, SendMessage, utc_now
from chat_tui.protocol.outgoing import Outgoing
from chat_tui.store.database import Database, StoreError
from chat_tui.store.records import (
    STATUS_RANK,
    ConversationSummary,
    IngestResult,
    MemberReceipt,
    MessageStatus,
    OutboxItem,
    SendRefusal,
    StatusChange,
    StoredMessage,
)
from chat_tui.store.schema import migrate

_MESSAGE_COLUMNS = """
    m.seq, m.message_id, m.conversation_key, m.sender_id, m.content, m.sent_at,
    m.outgoing, m.status, m.error, m.recipient_count,
    CASE WHEN m.outgoing THEN (SELECT count(*) FROM receipt_marks r
        WHERE r.conversation_key = m.conversation_key AND r.delivered_seq >= m.seq)
        ELSE 0 END AS delivered_count,
    CASE WHEN m.outgoing THEN (SELECT count(*) FROM receipt_marks r
        WHERE r.conversation_key = m.conversation_key AND r.read_seq >= m.seq)
        ELSE 0 END AS read_count
"""


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        seq=row["seq"],
        message_id=row["message_id"],
        conversation=Conversation.parse(row["conversation_key"]),
        sender_id=row["sender_id"],
        content=row["content"],
        sent_at=datetime.fromisoformat(row["sent_at"]),
        outgoing=bool(row["outgoing"]),
        status=row["status"],
        error=row["error"],
        recipient_count=row["recipient_count"],
        delivered_count=row["delivered_count"],
        read_count=row["read_count"],
    )


def _change(message: StoredMessage) -> StatusChange:
    return StatusChange(
        message_id=message.message_id,
        conversation=message.conversation,
        status=message.status,
        delivered_count=message.delivered_count,
        read_count=message.read_count,
        recipient_count=message.recipient_count,
        error=message.error,
    )


def _enqueue(conn: sqlite3.Connection, kind: str, out: Outgoing, coalesce: str | None) -> int:
    """Add to the outbox; return the row's seq."""
    # A newer cumulative receipt replaces one still waiting: only the latest matters.
    cursor = conn.execute(
        """INSERT INTO outbox (kind, routing_key, message_type, amqp_message_id, body,
                               coalesce_key, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(coalesce_key) DO UPDATE SET
               routing_key = excluded.routing_key, amqp_message_id = excluded.amqp_message_id,
               body = excluded.body, attempts = 0, last_error = NULL""",
        (
            kind,
            out.routing_key,
            out.message_type,
            out.amqp_message_id,
            out.body,
            coalesce,
            _iso(utc_now()),
        ),
    )
    return cursor.lastrowid or 0


_INSERT_ROWS = 400
"""Rows per multi-row INSERT: 8 parameters each stays far below SQLite's limit of 32,766."""


def _insert_messages(
    conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]], base: int
) -> None:
    """Insert received messages in order with multi-row INSERTs, one statement per
    chunk rather than an executemany, which steps once per row. The caller has counted
    on seqs base+1, base+2, ...; a surprise rolls the batch back rather than mislabel it."""
    last = base
    for start in range(0, len(rows), _INSERT_ROWS):
        chunk = rows[start : start + _INSERT_ROWS]
        values = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        cursor = conn.execute(
            f"""INSERT INTO messages (message_id, conversation_key, sender_id, content,
                   sent_at, stored_at, outgoing, status) VALUES {values}""",
            [value for row in chunk for value in row],
        )
        last = cursor.lastrowid or 0
    if last != base + len(rows):
        raise StoreError("the cache handed out message seqs out of order")


def _sequence_of_messages(conn: sqlite3.Connection) -> int:
    """The last seq AUTOINCREMENT handed out for messages (0 before the first)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    return int(row[0]) if row else 0


class SendRefused(Exception):
    """An own message cannot go where it is addressed; nothing was written."""

    def __init__(self, reason: SendRefusal, target: str) -> None:
        super().__init__(f"{reason.value}: {target}")
        self.reason = reason
        self.target = target


def _recipients_or_refuse(
    conn: sqlite3.Connection, message: SendMessage, me: str, *, refuse_unknown_user: bool
) -> int:
    """How many others a message goes to, or SendRefused."""
    if message.group_id is not None:
        members = [
            row[0]
            for row in conn.execute(
                "SELECT user_id FROM directory_members WHERE group_id = ?", (message.group_id,)
            )
        ]
        if me not in members:
            known = conn.execute(
                "SELECT 1 FROM directory_groups WHERE group_id = ?", (message.group_id,)
            ).fetchone()
            reason = SendRefusal.NOT_A_MEMBER if known else SendRefusal.UNKNOWN_GROUP
            raise SendRefused(reason, message.group_id)
        return len(members) - 1
    recipient = message.recipient_id
    assert recipient is not None
    if refuse_unknown_user:
        # An empty directory says nothing yet (a first start before it was read).
        row = conn.execute(
            """SELECT EXISTS(SELECT 1 FROM directory_users),
                      EXISTS(SELECT 1 FROM directory_users WHERE user_id = ?)""",
            (recipient,),
        ).fetchone()
        if row[0] and not row[1]:
            raise SendRefused(SendRefusal.UNKNOWN_USER, recipient)
    return 1


def _ensure_conversation(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("INSERT OR IGNORE INTO conversations (conversation_key) VALUES (?)", (key,))


class Store:
    """The per-user cache. Open with `await Store.open(path, me)`."""

    def __init__(self, database: Database, me: str) -> None:
        self._db = database
        self.me = me
        self._mention = re.compile(rf"(?<![\w-])@?{re.escape(me)}(?![\w-])", re.IGNORECASE)
        self._me_folded = me.casefold()

    def _mentions_me(self, content: str) -> bool:
        # The substring test first: most messages do not contain the name at all.
        return self._me_folded in content.casefold() and bool(self._mention.search(content))

    @classmethod
    async def open(cls, path: Path, me: str) -> Store:
        database = Database(path)
        try:
            await database.open(migrate)
        except BaseException:
            await database.close()
            raise
        return cls(database, me)

    @property
    def path(self) -> Path:
        return self._db.path

    async def close(self) -> None:
        await self._db.close()

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
        sent_at = _iso(message.timestamp)

        def work(conn: sqlite3.Connection) -> tuple[StoredMessage, OutboxItem]:
            recipient_count = _recipients_or_refuse(
                conn, message, self.me, refuse_unknown_user=refuse_unknown_user
            )
            _ensure_conversation(conn, conversation.key)
            outbox_seq = _enqueue(conn, "message", out, None)
            cursor = conn.execute(
                """INSERT INTO messages (message_id, conversation_key, sender_id, content,
                       sent_at, stored_at, outgoing, status, recipient_count, shown)
                   VALUES (?, ?, ?, ?, ?, ?, 1, 'queued', ?, 1)""",
                (
                    message_id,
                    conversation.key,
                    message.sender_id,
                    message.content,
                    sent_at,
                    _iso(utc_now()),
                    recipient_count,
                ),
            )
            seq = cursor.lastrowid or 0
            # Sending is reading: everything before an own message counts as read.
            conn.execute(
                """UPDATE conversations SET last_seq = ?, last_activity = ?, unread_count = 0,
                       mentioned = 0, last_read_seq = ? WHERE conversation_key = ?""",
                (seq, sent_at, seq, conversation.key),
            )
            stored = StoredMessage(
                seq=seq,
                message_id=message_id,
                conversation=conversation,
                sender_id=message.sender_id,
                content=message.content,
                sent_at=message.timestamp,
                outgoing=True,
                status="queued",
                recipient_count=recipient_count,
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

        return await self._db.transaction(work, durable=durable)

    async def sync(self) -> None:
        """Make every commit so far survive a power cut."""
        await self._db.sync()

    async def enqueue_directory(self, event: DirectoryEvent) -> None:
        await self._db.transaction(
            lambda conn: _enqueue(conn, "directory", Outgoing.directory(event), None)
        )

    async def outbox(self, limit: int = 100) -> list[OutboxItem]:
        def work(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(
                """SELECT seq, kind, routing_key, message_type, amqp_message_id, body, attempts
                   FROM outbox ORDER BY seq LIMIT ?""",
                (limit,),
            ).fetchall()
            return [OutboxItem(**dict(row)) for row in rows]

        return await self._db.run(work)

    async def outbox_size(self) -> int:
        return await self._db.run(
            lambda conn: conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        )

    async def pending_messages(self) -> int:
        """Own chat messages still waiting in the outbox (not receipts)."""
        return await self._db.run(
            lambda conn: conn.execute(
                "SELECT count(*) FROM outbox WHERE kind = 'message'"
            ).fetchone()[0]
        )

    async def confirm_published(self, items: Sequence[OutboxItem]) -> list[StatusChange]:
        """The broker confirmed these: drop them from the outbox, mark messages sent."""

        def work(conn: sqlite3.Connection) -> list[StatusChange]:
            changed: list[str] = []
            for item in items:
                # Match the AMQP ID too: a coalesced receipt may have replaced the row.
                conn.execute(
                    "DELETE FROM outbox WHERE seq = ? AND amqp_message_id = ?",
                    (item.seq, item.amqp_message_id),
                )
                if item.kind == "message":
                    cursor = conn.execute(
                        "UPDATE messages SET status = 'sent' WHERE message_id = ? "
                        "AND status = 'queued'",
                        (item.amqp_message_id,),
                    )
                    if cursor.rowcount:
                        changed.append(item.amqp_message_id)
            return [_change(m) for m in self._messages_by_id(conn, changed)]

        # Not durable by itself: losing it in a power cut only publishes these again
        # with the same message IDs, and receivers deduplicate. The next durable commit
        # syncs it.
        return await self._db.transaction(work, durable=False)

    async def fail_outgoing(self, item: OutboxItem, reason: str) -> StatusChange | None:
        """The broker returned it (nobody to route to): it will never go out."""

        def work(conn: sqlite3.Connection) -> StatusChange | None:
            conn.execute("DELETE FROM outbox WHERE seq = ?", (item.seq,))
            if item.kind != "message":
                return None
            conn.execute(
                "UPDATE messages SET status = 'failed', error = ? WHERE message_id = ?",
                (reason, item.amqp_message_id),
            )
            found = self._messages_by_id(conn, [item.amqp_message_id])
            return _change(found[0]) if found else None

        return await self._db.transaction(work)

    async def record_attempt(self, items: Sequence[OutboxItem], error: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                [(error, item.seq) for item in items],
            )

        await self._db.transaction(work)

    # --- receive path ----------------------------------------------------------------

    async def store_incoming(
        self, messages: Sequence[SendMessage], send_delivered: bool = True, durable: bool = True
    ) -> IngestResult:
        """Store a batch, skipping message IDs already known, and queue the
        cumulative `delivered` receipts for it in the same transaction.

        With `durable=False` the commit skips the fsync; the caller must then call
        `mark_shown(..., then_sync=True)` before it acks the batch to the broker."""
        # The per-message Python runs here, on the event loop, before and after one trip
        # to the SQLite thread, which does only set-wise SQL: a handful of statements per
        # batch, whatever its size. That thread gives the GIL up in every SQLite call
        # and must win it back from a loop busy parsing deliveries; in a backlog it is
        # the slower stage of the pipeline, so its share of the work is kept small.
        stored_at = _iso(utc_now())
        # A message can sit in one batch twice (a delivery from a channel that died and
        # its redelivery on the new one): keep the first copy, or it would be shown twice
        # (fault scenario 1).
        incoming: dict[str, _Incoming] = {}
        conversations: dict[tuple[str | None, str | None], Conversation] = {}
        for message in messages:
            message_id = str(message.message_id)
            if message_id in incoming:
                continue
            sender = message.sender_id
            outgoing = sender == self.me
            other = None if message.group_id else message.recipient_id if outgoing else sender
            conversation = conversations.get((message.group_id, other))
            if conversation is None:
                conversation = Conversation.of_message(message, self.me)
                conversations[(message.group_id, other)] = conversation
            sent_at = _iso(message.timestamp)
            incoming[message_id] = _Incoming(
                message,
                conversation,
                (
                    message_id,
                    conversation.key,
                    sender,
                    message.content,
                    sent_at,
                    stored_at,
                    int(outgoing),
                    "sent" if outgoing else "received",
                ),
                outgoing,
                not outgoing and self._mentions_me(message.content),
            )

        def work(conn: sqlite3.Connection) -> tuple[int, list[str], list[StoredMessage]]:
            known = self._known_ids(conn, list(incoming))
            fresh = [mid for mid in incoming if mid not in known]
            # Inside this write transaction AUTOINCREMENT hands out consecutive seqs in
            # VALUES order, so they are known before the insert (checked after it).
            base = _sequence_of_messages(conn)
            touched: dict[str, _ConversationDelta] = {}
            latest_from: dict[tuple[str, str], str] = {}
            for seq, mid in enumerate(fresh, start=base + 1):
                item = incoming[mid]
                key = item.row[1]
                delta = touched.get(key)
                if delta is None:
                    delta = touched[key] = _ConversationDelta()
                delta.last_seq, delta.last_activity = seq, item.row[4]
                if not item.outgoing:
                    delta.unread += 1
                    delta.mentioned = delta.mentioned or item.mentions_me
                    latest_from[(item.message.sender_id, key)] = mid
            # The conversation rows first (messages reference them), each brought up to
            # date by this batch in the same statement that creates it if need be.
            for key, delta in touched.items():
                conn.execute(
                    """INSERT INTO conversations (conversation_key, last_seq, last_activity,
                           unread_count, mentioned) VALUES (?, ?, ?, ?, ?)
                       ON CONFLICT(conversation_key) DO UPDATE SET
                           last_seq = excluded.last_seq,
                           last_activity = excluded.last_activity,
                           unread_count = unread_count + excluded.unread_count,
                           mentioned = max(mentioned, excluded.mentioned)""",
                    (key, delta.last_seq, delta.last_activity, delta.unread, int(delta.mentioned)),
                )
            _insert_messages(conn, [incoming[mid].row for mid in fresh], base)
            if send_delivered:
                for (sender, key), message_id in latest_from.items():
                    receipt = ReceiveMessage(
                        recipient_id=self.me, message_id=UUID(message_id), status="delivered"
                    )
                    _enqueue(
                        conn,
                        "receipt",
                        Outgoing.receipt(receipt, sender),
                        f"delivered:{sender}:{key}",
                    )
            # Redelivered messages that were stored but never shown (we died in between).
            unshown = sorted(seq for seq in known.values() if seq is not None)
            return base, fresh, self._messages_by_seq(conn, unshown) if unshown else []

        base, fresh, unshown = await self._db.transaction(work, durable=durable)
        new = [
            StoredMessage(
                seq=seq,
                message_id=mid,
                conversation=incoming[mid].conversation,
                sender_id=incoming[mid].message.sender_id,
                content=incoming[mid].message.content,
                sent_at=incoming[mid].message.timestamp,
                outgoing=incoming[mid].outgoing,
                status="sent" if incoming[mid].outgoing else "received",
            )
            for seq, mid in enumerate(fresh, start=base + 1)
        ]
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

        def work(conn: sqlite3.Connection) -> None:
            for start in range(0, len(seqs), 500):
                chunk = list(seqs[start : start + 500])
                marks = ",".join("?" * len(chunk))
                conn.execute(f"UPDATE messages SET shown = 1 WHERE seq IN ({marks})", chunk)

        if not seqs and not then_sync:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        # No transaction and no sync of its own: losing a mark in a crash or a power cut
        # only shows a message twice.
        return self._db.autocommit(work, sync_after=then_sync)

    async def mark_read(
        self, conversation: Conversation, up_to_seq: int, send_receipts: bool = True
    ) -> int:
        """Everything up to `up_to_seq` was shown; queue one `read` receipt per sender.
        Returns the number of receipts queued."""
        key = conversation.key

        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT last_read_seq FROM conversations WHERE conversation_key = ?", (key,)
            ).fetchone()
            newest = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM messages WHERE conversation_key = ?", (key,)
            ).fetchone()[0]
            # Never past the newest message: a mark beyond it would swallow later reads.
            up_to = min(up_to_seq, newest)
            if row is None or up_to <= row["last_read_seq"]:
                return 0
            previous = row["last_read_seq"]
            unread = conn.execute(
                "SELECT count(*) FROM messages WHERE conversation_key = ? AND seq > ? "
                "AND outgoing = 0",
                (key, up_to),
            ).fetchone()[0]
            conn.execute(
                """UPDATE conversations SET last_read_seq = ?, unread_count = ?,
                       mentioned = CASE WHEN ? = 0 THEN 0 ELSE mentioned END
                   WHERE conversation_key = ?""",
                (up_to, unread, unread, key),
            )
            if not send_receipts:
                return 0
            latest = conn.execute(
                """SELECT sender_id, message_id, max(seq) FROM messages
                   WHERE conversation_key = ? AND seq > ? AND seq <= ? AND outgoing = 0
                   GROUP BY sender_id""",
                (key, previous, up_to),
            ).fetchall()
            for sender, message_id, _seq in latest:
                receipt = ReceiveMessage(
                    recipient_id=self.me, message_id=UUID(message_id), status="read"
                )
                _enqueue(conn, "receipt", Outgoing.receipt(receipt, sender), f"read:{sender}:{key}")
            return len(latest)

        return await self._db.transaction(work)

    async def apply_receipts(self, receipts: Sequence[ReceiveMessage]) -> list[StatusChange]:
        """Fold cumulative receipts for own messages into per-member marks and statuses."""

        def work(conn: sqlite3.Connection) -> list[StatusChange]:
            touched: set[int] = set()
            for receipt in receipts:
                touched.update(self._apply_receipt(conn, receipt))
            if not touched:
                return []
            messages = self._messages_by_seq(conn, sorted(touched))
            changes: list[StatusChange] = []
            for message in messages:
                status = message.status
                if status in STATUS_RANK:
                    status = _status_from_counts(message)
                if status != message.status:
                    conn.execute(
                        "UPDATE messages SET status = ? WHERE seq = ?", (status, message.seq)
                    )
                changes.append(
                    StatusChange(
                        message.message_id,
                        message.conversation,
                        status,
                        message.delivered_count,
                        message.read_count,
                        message.recipient_count,
                        message.error,
                    )
                )
            return changes

        return await self._db.transaction(work)

    def _apply_receipt(self, conn: sqlite3.Connection, receipt: ReceiveMessage) -> list[int]:
        row = conn.execute(
            "SELECT seq, conversation_key FROM messages WHERE message_id = ? AND outgoing = 1",
            (str(receipt.message_id),),
        ).fetchone()
        if row is None:
            return []  # not ours, or from before this cache existed
        seq, key = row["seq"], row["conversation_key"]
        member = receipt.recipient_id
        conversation = Conversation.parse(key)
        if member == self.me or (conversation.kind == "dm" and conversation.name != member):
            return []  # a receipt from someone who was never sent this message
        conn.execute(
            "INSERT OR IGNORE INTO receipt_marks (conversation_key, member_id) VALUES (?, ?)",
            (key, member),
        )
        old = conn.execute(
            "SELECT delivered_seq, read_seq FROM receipt_marks "
            "WHERE conversation_key = ? AND member_id = ?",
            (key, member),
        ).fetchone()
        column = "read_seq" if receipt.status == "read" else "delivered_seq"
        before = min(old["delivered_seq"], old[column])
        if old[column] >= seq and old["delivered_seq"] >= seq:
            return []
        # Read implies delivered.
        conn.execute(
            f"""UPDATE receipt_marks SET delivered_seq = max(delivered_seq, ?),
                   {column} = max({column}, ?)
                WHERE conversation_key = ? AND member_id = ?""",
            (seq, seq, key, member),
        )
        conn.execute(
            "INSERT INTO receipt_log (conversation_key, member_id, status, up_to_seq, at) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, member, receipt.status, seq, _iso(receipt.timestamp)),
        )
        rows = conn.execute(
            "SELECT seq FROM messages WHERE conversation_key = ? AND outgoing = 1 "
            "AND seq > ? AND seq <= ?",
            (key, before, seq),
        ).fetchall()
        return [r["seq"] for r in rows]

    async def receipt_details(self, message_id: str) -> list[MemberReceipt]:
        """Who received and read an own message, and when (from the receipt log)."""

        def work(conn: sqlite3.Connection) -> list[MemberReceipt]:
            row = conn.execute(
                "SELECT seq, conversation_key FROM messages WHERE message_id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return []
            rows = conn.execute(
                """SELECT member_id,
                       min(CASE WHEN up_to_seq >= ? THEN at END) AS delivered_at,
                       min(CASE WHEN up_to_seq >= ? AND status = 'read' THEN at END) AS read_at
                   FROM receipt_log WHERE conversation_key = ?
                   GROUP BY member_id ORDER BY member_id""",
                (row["seq"], row["seq"], row["conversation_key"]),
            ).fetchall()
            return [
                MemberReceipt(
                    r["member_id"], _parse_time(r["delivered_at"]), _parse_time(r["read_at"])
                )
                for r in rows
                if r["delivered_at"] is not None
            ]

        return await self._db.run(work)

    # --- reading ---------------------------------------------------------------------

    async def conversations(self) -> list[ConversationSummary]:
        def work(conn: sqlite3.Connection) -> list[ConversationSummary]:
            rows = conn.execute(
                """SELECT c.*,
                       CASE WHEN c.conversation_key LIKE 'group:%' THEN EXISTS(
                           SELECT 1 FROM directory_members d
                           WHERE 'group:' || d.group_id = c.conversation_key AND d.user_id = ?)
                       ELSE 1 END AS active
                   FROM conversations c ORDER BY c.conversation_key""",
                (self.me,),
            ).fetchall()
            return [
                ConversationSummary(
                    conversation=Conversation.parse(r["conversation_key"]),
                    unread_count=r["unread_count"],
                    last_read_seq=r["last_read_seq"],
                    last_seq=r["last_seq"],
                    mentioned=bool(r["mentioned"]),
                    last_activity=_parse_time(r["last_activity"]),
                )
                for r in rows
                if r["active"] or r["last_seq"]
            ]

        return await self._db.run(work)

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

        def work(conn: sqlite3.Connection) -> list[StoredMessage]:
            if after_seq is not None:
                rows = conn.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_key = ? "
                    "AND m.seq > ? ORDER BY m.seq LIMIT ?",
                    (conversation.key, after_seq, limit),
                ).fetchall()
                return [_message(r) for r in rows]
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_key = ? "
                "AND m.seq < ? ORDER BY m.seq DESC LIMIT ?",
                (conversation.key, before_seq if before_seq is not None else 2**62, limit),
            ).fetchall()
            return [_message(r) for r in reversed(rows)]

        return await self._db.run(work)

    async def message_count(self, conversation: Conversation) -> int:
        return await self._db.run(
            lambda conn: conn.execute(
                "SELECT count(*) FROM messages WHERE conversation_key = ?", (conversation.key,)
            ).fetchone()[0]
        )

    async def get_message(self, message_id: str) -> StoredMessage | None:
        found = await self._db.run(lambda conn: self._messages_by_id(conn, [message_id]))
        return found[0] if found else None

    def _known_ids(self, conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, int | None]:
        """Of `ids`, those already stored: message ID -> seq if never shown, else None."""
        known: dict[str, int | None] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(
                f"SELECT message_id, seq, shown FROM messages WHERE message_id IN ({marks})",
                chunk,
            ):
                known[row[0]] = None if row[2] else row[1]
        return known

    def _messages_by_id(self, conn: sqlite3.Connection, ids: Sequence[str]) -> list[StoredMessage]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.message_id IN ({marks}) "
            "ORDER BY m.seq",
            list(ids),
        ).fetchall()
        return [_message(r) for r in rows]

    def _messages_by_seq(
        self, conn: sqlite3.Connection, seqs: Sequence[int]
    ) -> list[StoredMessage]:
        result: list[StoredMessage] = []
        # Chunked: SQLite limits the number of parameters in one statement.
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.seq IN ({marks}) "
                "ORDER BY m.seq",
                list(chunk),
            ).fetchall()
            result.extend(_message(r) for r in rows)
        return result

    # --- directory -------------------------------------------------------------------

    async def apply_directory(self, events: Sequence[DirectoryEvent]) -> bool:
        """Fold directory events in stream order. Each event sets a fact to a value, so
        replaying the stream from the start onto any earlier fold gives the same state.
        Returns whether anything changed."""

        def work(conn: sqlite3.Connection) -> bool:
            before = conn.total_changes
            for event in events:
                at = _iso(event.timestamp)
                conn.execute(
                    "INSERT OR IGNORE INTO directory_users (user_id, registered_at) VALUES (?, ?)",
                    (event.user_id, at),
                )
                group = event.group_id
                if event.event == "created" and group is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO directory_groups (group_id, created_by, "
                        "created_at) VALUES (?, ?, ?)",
                        (group, event.user_id, at),
                    )
                elif event.event == "joined" and group is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO directory_members (group_id, user_id, joined_at) "
                        "VALUES (?, ?, ?)",
                        (group, event.user_id, at),
                    )
                    if event.user_id == self.me:
                        _ensure_conversation(conn, Conversation.group(group).key)
                elif event.event == "left" and group is not None:
                    conn.execute(
                        "DELETE FROM directory_members WHERE group_id = ? AND user_id = ?",
                        (group, event.user_id),
                    )
            return conn.total_changes != before

        return await self._db.transaction(work)

    async def users(self) -> list[str]:
        return await self._column("SELECT user_id FROM directory_users ORDER BY user_id")

    async def groups(self) -> list[str]:
        return await self._column("SELECT group_id FROM directory_groups ORDER BY group_id")

    async def members(self, group_id: str) -> list[str]:
        return await self._column(
            "SELECT user_id FROM directory_members WHERE group_id = ? ORDER BY user_id",
            (group_id,),
        )

    async def groups_of(self, user_id: str) -> list[str]:
        return await self._column(
            "SELECT group_id FROM directory_members WHERE user_id = ? ORDER BY group_id",
            (user_id,),
        )

    async def _column(self, sql: str, params: tuple[str, ...] = ()) -> list[str]:
        return await self._db.run(
            lambda conn: [row[0] for row in conn.execute(sql, params).fetchall()]
        )

    async def get_meta(self, key: str) -> str | None:
        row = await self._db.run(
            lambda conn: conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        )
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        await self._db.transaction(
            lambda conn: conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )


class _Incoming(NamedTuple):
    """A received message, prepared on the event loop for `store_incoming`."""

    message: SendMessage
    conversation: Conversation
    row: tuple[str, str, str, str, str, str, int, str]
    """The INSERT's values: message_id, conversation_key, sender_id, content, sent_at,
    stored_at, outgoing, status."""
    outgoing: bool
    mentions_me: bool


@dataclass
class _ConversationDelta:
    """What one batch changes in a conversation row."""

    last_seq: int = 0
    last_activity: str | None = None
    unread: int = 0
    mentioned: bool = False


def _status_from_counts(message: StoredMessage) -> MessageStatus:
    wanted = max(message.recipient_count, 1)
    if message.read_count >= wanted:
        return "read"
    if message.delivered_count >= wanted:
        return "delivered"
    return "sent"
