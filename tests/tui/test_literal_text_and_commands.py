"""Pure pieces of the app: literal text, slash command parsing, status ticks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chat_tui.core.records import StoredMessage
from chat_tui.protocol.conversations import Conversation
from chat_tui.tui.formatting import SENDER_COLOURS, sender_colour, status_tick
from chat_tui.tui.literal import literal_text
from chat_tui.tui.slash_commands import SlashCommand, SlashCommandError, parse, unescape


def test_markup_stays_text_and_control_characters_become_visible() -> None:
    shown = literal_text("[red]x[/red]\x1b[2J\x07\x9b\u202eevil\ttab\r")
    assert shown.plain == "[red]x[/red]<ESC>[2J<BEL><0x9B><U+202E>evil    tab<CR>"
    assert not shown.spans or all(span.style != "red" for span in shown.spans)


def test_newlines_and_emoji_joiners_are_kept() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert literal_text(f"two\nlines {family}").plain == f"two\nlines {family}"


def test_slash_commands_parse_and_double_slash_escapes() -> None:
    assert parse("/join #team") == SlashCommand("join", "team")
    assert parse("/dm @bob") == SlashCommand("dm", "bob")
    assert parse("/leave") == SlashCommand("leave", None)
    assert parse("hello /join") is None
    assert parse("//join is literal") is None
    assert unescape("//join is literal") == "/join is literal"
    with pytest.raises(SlashCommandError, match="usage: /join GROUP"):
        parse("/join")
    with pytest.raises(SlashCommandError, match="unknown command /nope"):
        parse("/nope")


def _own(status: str, recipients: int, delivered: int = 0, read: int = 0) -> StoredMessage:
    return StoredMessage(
        seq=1,
        message_id="m",
        conversation=Conversation.group("g"),
        sender_id="alice",
        content="hi",
        sent_at=datetime(2026, 1, 1, tzinfo=UTC),
        outgoing=True,
        status=status,  # type: ignore[arg-type]
        recipient_count=recipients,
        delivered_count=delivered,
        read_count=read,
    )


def test_ticks_are_drawn_differently_for_each_status() -> None:
    assert status_tick(_own("queued", 1), group=False).plain == "◷ queued"
    assert status_tick(_own("sent", 1), group=False).plain == "✓"
    assert status_tick(_own("delivered", 1, 1), group=False).plain == "✓✓"
    assert status_tick(_own("read", 1, 1, 1), group=False).plain == "✓✓ read"
    assert status_tick(_own("delivered", 5, 4, 3), group=True).plain == "✓✓ read 3/5"
    assert status_tick(_own("delivered", 5, 2), group=True).plain == "✓✓ 2/5"
    styles = {str(status_tick(_own(s, 1, 1, 1), group=False).style) for s in ("queued", "read")}
    assert len(styles) == 2


def test_each_sender_keeps_one_colour_and_senders_differ() -> None:
    names = ["alice", "bob", "carol", "dave", "erin", "frank"]
    assert all(sender_colour(n) in SENDER_COLOURS for n in names)
    assert [sender_colour(n) for n in names] == [sender_colour(n) for n in names]
    assert len({sender_colour(n) for n in names}) >= 3
