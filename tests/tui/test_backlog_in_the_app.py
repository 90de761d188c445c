"""A large backlog reaching the app: drawn batch by batch, counted, read and saved."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from chat_tui.config import Settings
from chat_tui.core.records import ConversationSummary, StoredMessage
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import SendMessage
from chat_tui.tui.app import ChatApp
from chat_tui.tui.unread_counts import UnreadCounts
from chat_tui.tui.widgets.conversation.line_layout import LineLayout
from chat_tui.tui.widgets.conversation.message_view import MAX_WINDOW, MessageView
from tests.conftest import eventually
from tests.tui.screen_reading import main_screen, main_screen_ready, message_lines, sidebar_rows

SIZE = (110, 30)
LATE_EVENING = datetime(2026, 3, 9, 23, 50, tzinfo=UTC)
LONG = "a line long enough to wrap over two or three rows of the message view " * 3


def _backlog(start: int, count: int) -> list[SendMessage]:
    """bob's messages, some long enough to wrap, crossing midnight on the way."""
    return [
        SendMessage(
            message_id=uuid.uuid4(),
            sender_id="bob",
            recipient_id="alice",
            content=f"backlog {n} " + (LONG if n % 3 == 0 else "short"),
            timestamp=LATE_EVENING + timedelta(seconds=3 * n),
        )
        for n in range(start, start + count)
    ]


async def _unread(app: ChatApp, conversation: Conversation) -> int:
    summaries = {s.conversation: s for s in await app.client.store.conversations()}
    return summaries[conversation].unread_count


async def test_backlog_in_the_open_conversation_is_drawn_like_a_fresh_open(
    offline_settings: Settings,
) -> None:
    bob = Conversation.dm("bob")
    app = ChatApp(offline_settings, connect=False, open_conversation=bob, zone=UTC)
    async with app.run_test(size=SIZE) as pilot:
        await main_screen_ready(app)
        screen = main_screen(app)
        for start in range(0, 700, 100):
            # What the core does with each batch: store it, then show it.
            stored = await app.client.store.store_incoming(_backlog(start, 100))
            await screen.apply_batch(stored.to_show)
            await pilot.pause()
        view = screen.query_one(MessageView)
        assert len(view.messages) <= MAX_WINDOW
        assert view.messages[-1].content.startswith("backlog 699 ")
        assert view.tail
        drawn = message_lines(app)
        # Laid out batch by batch (the oldest dropped as new ones came) = laid out at once.
        layout = view.line_layout
        at_once = LineLayout(view.renderer.row_count, view.renderer.day_label)
        at_once.lay_out(view.messages, layout.width, layout.divider_seq)
        assert list(layout) == list(at_once)
        assert _seqs(layout) == _seqs(at_once)
        assert "backlog 699 a line" in "\n".join(drawn)
        await eventually(lambda: "▌@bob" in _rows(app), what="the backlog read")
        await eventually(lambda: _no_unread(app, bob), what="the reads saved")
    # A fresh start draws exactly what the batches drew.
    again = ChatApp(offline_settings, connect=False, open_conversation=bob, zone=UTC)
    async with again.run_test(size=SIZE):
        await main_screen_ready(again)
        assert message_lines(again) == drawn


def _seqs(layout: LineLayout) -> list[tuple[int, int | None]]:
    """Each line's message, and where that message starts."""
    return [(layout.seq_at(y), layout.start_of(layout.seq_at(y))) for y in range(len(layout))]


def _rows(app: ChatApp) -> list[str]:
    return [" ".join(row.split()) for row in sidebar_rows(app)]


async def _no_unread(app: ChatApp, conversation: Conversation) -> bool:
    return await _unread(app, conversation) == 0


async def test_backlog_in_another_conversation_is_counted_in_the_sidebar(
    offline_settings: Settings,
) -> None:
    carol = Conversation.dm("carol")
    app = ChatApp(offline_settings, connect=False, open_conversation=carol, zone=UTC)
    async with app.run_test(size=SIZE) as pilot:
        await main_screen_ready(app)
        screen = main_screen(app)
        for start in range(0, 300, 100):
            stored = await app.client.store.store_incoming(_backlog(start, 100))
            await screen.apply_batch(stored.to_show)
            # Counted in the sidebar's data as soon as the batch is applied.
            assert screen.summaries[Conversation.dm("bob")].unread_count == start + 100
        await pilot.pause()
        await eventually(lambda: "@bob 300" in _rows(app), what="300 unread drawn")
        assert await _unread(app, Conversation.dm("bob")) == 300


def _message(seq: int, conversation: Conversation, *, outgoing: bool = False) -> StoredMessage:
    return StoredMessage(
        seq=seq,
        message_id=f"m{seq}",
        conversation=conversation,
        sender_id="alice" if outgoing else conversation.name,
        content=f"message {seq}",
        sent_at=LATE_EVENING,
        outgoing=outgoing,
        status="sent" if outgoing else "received",
    )


def test_unread_counts_add_up_batches_and_reads_between_reads_of_the_store() -> None:
    team, bob = Conversation.group("team"), Conversation.dm("bob")
    counts = UnreadCounts()
    counts.reloaded([ConversationSummary(team, 1, 10, 11, True, None)])
    counts.count([_message(12, team), _message(13, team, outgoing=True), _message(14, bob)])
    counts.count([_message(12, team)])  # shown again after a redelivery: counted once
    assert counts.summaries[team].unread_count == 2
    assert counts.summaries[team].last_seq == 13
    assert counts.summaries[bob].unread_count == 1

    counts.read(team, 13)
    assert counts.summaries[team].unread_count == 0
    assert not counts.summaries[team].mentioned
    assert counts.take_reads() == {team: 13}
    assert counts.take_reads() == {}

    # A read of the store that started before the next batch and read: both survive it.
    counts.reloading()
    counts.count([_message(15, bob)])
    counts.read(team, 13)
    counts.reloaded(
        [
            ConversationSummary(team, 2, 10, 13, True, None),
            ConversationSummary(bob, 1, 0, 14, False, None),
        ]
    )
    assert counts.summaries[bob].unread_count == 2
    assert counts.summaries[team].unread_count == 0
    assert counts.take_reads() == {team: 13}


def test_a_dm_opened_this_session_stays_listed_when_the_store_has_no_row_for_it() -> None:
    team = Conversation.group("team")
    carol, dave = Conversation.dm("carol"), Conversation.dm("dave")
    counts = UnreadCounts()
    counts.opened(carol)  # /dm carol, nothing said yet
    counts.opened(team)
    assert set(counts.summaries) == {carol, team}
    counts.reloaded([ConversationSummary(dave, 0, 0, 3, False, None)])
    # The group the store no longer lists (left) goes; the DM stays for the session.
    assert set(counts.summaries) == {dave, carol}
    assert counts.summaries[carol].unread_count == 0


async def test_row_counts_match_what_is_rendered(offline_settings: Settings) -> None:
    # The layout counts rows without rendering when it can; render_line relies on that count.
    app = ChatApp(offline_settings, connect=False, open_conversation="dm:bob", zone=UTC)
    contents = [
        "x" * 200,
        "word " * 40,
        "漢字" * 45,
        "a" * 82,
        "a" * 83,
        "b " * 41 + "c" * 30,
        "tab\tand newline\nkept",
        "",
    ]
    async with app.run_test(size=SIZE):
        await main_screen_ready(app)
        view = main_screen(app).query_one(MessageView)
        for width in (40, 89, 104):
            for seq, content in enumerate(contents, start=1):
                message = StoredMessage(
                    seq=seq * 1000 + width,
                    message_id=f"m{seq}",
                    conversation=Conversation.dm("bob"),
                    sender_id="bob",
                    content=content,
                    sent_at=LATE_EVENING,
                    outgoing=False,
                    status="received",
                )
                rows = view.renderer.row_count(message, width)
                assert rows == len(view.renderer.strips(message, width)), (content, width)


async def test_first_batch_opens_its_conversation_when_none_is_open(
    offline_settings: Settings,
) -> None:
    app = ChatApp(offline_settings, connect=False, zone=UTC)
    async with app.run_test(size=SIZE):
        await main_screen_ready(app)
        screen = main_screen(app)
        assert screen.current is None
        stored = await app.client.store.store_incoming(_backlog(0, 3))
        await screen.apply_batch(stored.to_show)
        assert screen.current == Conversation.dm("bob")
        assert "backlog 2 short" in "\n".join(message_lines(app))
