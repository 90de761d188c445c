"""The conversation list's data: the store's summaries, kept current between reads.

Reading the summaries from the store after every batch of a large backlog costs more
than the batch itself, so the screen reads them at most a few times a second and
counts in memory what was shown or read since. A read of the store always wins, except
for what happened while it was in flight: that is counted again on top of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from chat_tui.core.records import ConversationSummary, StoredMessage
from chat_tui.protocol.conversations import Conversation


def empty_summary(conversation: Conversation) -> ConversationSummary:
    """A conversation with nothing in it yet (opened with /dm, say)."""
    return ConversationSummary(conversation, 0, 0, 0, False, None)


class UnreadCounts:
    """Summaries by conversation; `count` and `read` change them at once, `reloaded`
    replaces them with the store's."""

    def __init__(self) -> None:
        self.summaries: dict[Conversation, ConversationSummary] = {}
        self._unsaved_reads: dict[Conversation, int] = {}
        self._reloading = False
        self._shown_during_reload: list[StoredMessage] = []
        self._opened_dms: set[Conversation] = set()

    def count(self, messages: Sequence[StoredMessage]) -> None:
        """Messages the store just took in (each counted once, by seq)."""
        if self._reloading:
            self._shown_during_reload.extend(messages)
        self._count(messages)

    def _count(self, messages: Iterable[StoredMessage]) -> None:
        summaries = self.summaries
        for message in messages:
            conversation = message.conversation
            summary = summaries.get(conversation) or empty_summary(conversation)
            if message.seq <= summary.last_seq:
                continue  # already counted by the store (a redelivery shown again)
            # As the store counts: every new message from someone else.
            unread = summary.unread_count + (not message.outgoing)
            # Mentions are the store's to find; its next read brings them.
            summaries[conversation] = replace(
                summary,
                unread_count=unread,
                last_seq=message.seq,
                last_activity=message.sent_at,
            )

    def read(self, conversation: Conversation, seq: int) -> None:
        """Messages up to `seq` were on screen; `take_reads` hands them to the store."""
        if seq > self._unsaved_reads.get(conversation, 0):
            self._unsaved_reads[conversation] = seq
        self._read(conversation, seq)

    def _read(self, conversation: Conversation, seq: int) -> None:
        summary = self.summaries.get(conversation)
        if summary is None or seq <= summary.last_read_seq:
            return
        if seq >= summary.last_seq:
            summary = replace(summary, last_read_seq=seq, unread_count=0, mentioned=False)
        else:
            # How many stay unread below the newest is the store's to say.
            summary = replace(summary, last_read_seq=seq)
        self.summaries[conversation] = summary

    def take_reads(self) -> dict[Conversation, int]:
        """The newest read seq per conversation not yet handed to the store."""
        reads, self._unsaved_reads = self._unsaved_reads, {}
        return reads

    def ensure(self, conversation: Conversation) -> None:
        """List `conversation` even while the store knows nothing of it."""
        if conversation not in self.summaries:
            self.summaries[conversation] = empty_summary(conversation)

    def opened(self, conversation: Conversation) -> None:
        """The user opened `conversation`: list it at once, and a DM for the rest of the
        session (opened with /dm, nothing said yet, the store has no row for it)."""
        self.ensure(conversation)
        if conversation.kind == "dm":
            self._opened_dms.add(conversation)

    def reloading(self) -> None:
        """A read of the store starts: remember what is shown until it ends."""
        self._reloading = True
        self._shown_during_reload.clear()

    def reloaded(self, summaries: Sequence[ConversationSummary] | None) -> None:
        """The store's summaries (None if the read failed: keep counting in memory)."""
        self._reloading = False
        shown, self._shown_during_reload = self._shown_during_reload, []
        if summaries is None:
            return
        self.summaries = {summary.conversation: summary for summary in summaries}
        self._count(shown)
        for conversation, seq in self._unsaved_reads.items():
            self._read(conversation, seq)
        for conversation in self._opened_dms:
            self.ensure(conversation)
