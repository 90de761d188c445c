"""The full-screen app, driven by Textual's Pilot against the real broker."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC

from textual import events
from textual.binding import Binding
from textual.command import CommandList
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Static

from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import MAX_CONTENT_BYTES
from chat_tui.tui.app import ChatApp
from chat_tui.tui.demo import BOT_NAMES, LOBBY
from chat_tui.tui.screens.details_screen import DetailsScreen
from chat_tui.tui.screens.help_screen import HelpScreen
from chat_tui.tui.screens.switcher_screen import switcher_candidates
from chat_tui.tui.slash_commands import SLASH_COMMANDS
from chat_tui.tui.widgets.conversation.message_view import MAX_WINDOW, PAGE, MessageView
from tests.conftest import Deployment, RecordingSink, eventually
from tests.tui.cache_fill import fill_long_conversation
from tests.tui.screen_reading import (
    header_text,
    main_screen,
    main_screen_ready,
    message_lines,
    message_text,
    notification_texts,
    sidebar_rows,
)

SIZE = (110, 30)


async def type_line(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*text, "enter")
    await pilot.pause()


async def come_online(app: ChatApp) -> None:
    assert await app.client.wait_online(15), "the app did not come online"
    assert await app.client.wait_directory(10)
    await main_screen_ready(app)


def rows(app: ChatApp) -> list[str]:
    return [" ".join(row.split()) for row in sidebar_rows(app)]


def sink(client: ChatClient) -> RecordingSink:
    recording = client.sink
    assert isinstance(recording, RecordingSink)
    return recording


async def test_message_typed_in_the_app_reaches_the_other_user_and_back(
    deployment: Deployment,
) -> None:
    bob = await deployment.client("bob")
    app = ChatApp(deployment.settings("alice"))
    async with app.run_test(size=SIZE) as pilot:
        await come_online(app)
        await type_line(pilot, "/dm bob")
        await eventually(lambda: main_screen(app).current == Conversation.dm("bob"), what="@bob")
        await type_line(pilot, "hello bob, from the app")
        await eventually(
            lambda: "hello bob, from the app" in sink(bob).contents(), what="bob receiving it"
        )
        await eventually(_knows_user(bob, "alice"), what="bob seeing alice register")
        await bob.send(Conversation.dm("alice"), "hi alice, from a plain client")
        await eventually(
            lambda: "hi alice, from a plain client" in message_text(app), what="alice seeing it"
        )


async def test_unread_counts_and_switching_conversations(deployment: Deployment) -> None:
    bob = await deployment.client("bob")
    await bob.create_group("team")
    app = ChatApp(deployment.settings("alice"))
    async with app.run_test(size=SIZE) as pilot:
        await come_online(app)
        await type_line(pilot, "/join team")
        await eventually(lambda: main_screen(app).current == Conversation.group("team"))
        await type_line(pilot, "/dm bob")
        await eventually(lambda: main_screen(app).current == Conversation.dm("bob"))
        await eventually(_has_member(bob, "team", "alice"), what="bob seeing alice in #team")
        for n in range(3):
            await bob.send(Conversation.group("team"), f"team news {n}")
        await eventually(lambda: "#team 3" in rows(app), what="3 unread in #team")
        assert "team news" not in message_text(app)
        await pilot.press("alt+a")
        await eventually(lambda: main_screen(app).current == Conversation.group("team"))
        await eventually(lambda: "team news 2" in message_text(app), what="the news shown")
        await eventually(lambda: "▌#team" in rows(app), what="#team open and read")

        async def bob_sees_read() -> bool:
            history = await bob.store.history(Conversation.group("team"))
            return history[-1].status == "read"

        await eventually(bob_sees_read, what="a read receipt at bob")
        await pilot.press("alt+1")
        assert main_screen(app).current == Conversation.group("team")
        await pilot.press("alt+down")
        assert main_screen(app).current == Conversation.dm("bob")


def _knows_group(client: ChatClient, group: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return group in await client.store.groups()

    return check


def _knows_user(client: ChatClient, user: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return user in await client.store.users()

    return check


def _has_member(client: ChatClient, group: str, user: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return user in await client.store.members(group)

    return check


async def test_status_ticks_change_as_receipts_come_in(deployment: Deployment) -> None:
    bob = await deployment.client("bob")
    app = ChatApp(deployment.settings("alice"), open_conversation="dm:bob")
    async with app.run_test(size=SIZE) as pilot:
        await come_online(app)
        view = main_screen(app).query_one(MessageView)
        await type_line(pilot, "are you there?")
        assert view.messages[-1].content == "are you there?"
        # Bob's client stores it and sends `delivered` at once, but has not shown it.
        await eventually(lambda: view.messages[-1].status == "delivered", what="delivered")
        line = next(line for line in message_lines(app) if "are you there?" in line)
        assert line.rstrip().endswith("✓✓") and "read" not in line
        await eventually(lambda: bool(sink(bob).shown), what="bob receiving it")
        await bob.mark_read(Conversation.dm("alice"), sink(bob).shown[-1].seq)
        await eventually(lambda: view.messages[-1].status == "read", what="read")
        await eventually(lambda: "are you there?  ✓✓ read" in message_text(app), what="read tick")

        await pilot.press("ctrl+o", "i")
        await eventually(lambda: isinstance(app.screen, DetailsScreen), what="the details")
        details = str(app.screen.query_one("#details-text", Static).render())
        assert "bob" in details and "read by 1/1" in details
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailsScreen)


async def test_group_ticks_count_readers(deployment: Deployment) -> None:
    bob = await deployment.client("bob")
    carol = await deployment.client("carol")
    await bob.create_group("crew")
    await eventually(_knows_group(carol, "crew"), what="carol seeing #crew")
    await carol.join_group("crew")
    app = ChatApp(deployment.settings("alice"))
    async with app.run_test(size=SIZE) as pilot:
        await come_online(app)
        await type_line(pilot, "/join crew")
        await eventually(lambda: main_screen(app).current == Conversation.group("crew"))
        await eventually(_has_member(bob, "crew", "alice"), what="bob seeing alice join")
        await eventually(_has_member(carol, "crew", "alice"), what="carol seeing alice join")
        await type_line(pilot, "standup in 5")
        await eventually(lambda: "standup in 5  ✓✓ 2/2" in message_text(app), what="✓✓ 2/2")
        await eventually(lambda: bool(sink(bob).shown), what="bob receiving it")
        await bob.mark_read(Conversation.group("crew"), sink(bob).shown[-1].seq)
        await eventually(lambda: "standup in 5  ✓✓ read 1/2" in message_text(app))


async def test_offline_start_reads_history_and_queues_what_is_typed(
    sample_settings: Settings,
) -> None:
    app = ChatApp(sample_settings, open_conversation="group:lobby", zone=UTC)
    async with app.run_test(size=SIZE) as pilot:
        await main_screen_ready(app)
        # The cached history is there before (and without) any broker.
        assert "see you at standup" in message_text(app)
        await eventually(lambda: "offline, next try in" in header_text(app), what="offline")
        assert "1 queued" in header_text(app)
        await type_line(pilot, "typed while offline")
        await eventually(
            lambda: "typed while offline  ◷ queued" in message_text(app), what="queued tick"
        )
        await eventually(lambda: "2 queued" in header_text(app), what="2 queued in the header")


def _close_broker_connection(connection_name: str) -> None:
    """Make the broker drop one client's connection (the broker itself keeps running)."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines() if connection_name in line]
    assert pids, f"no connection named {connection_name}"
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "dropped by a test"],
            capture_output=True,
            timeout=60,
            check=True,
        )


async def test_header_shows_reconnecting_when_the_broker_drops_the_connection(
    deployment: Deployment,
) -> None:
    user = f"drop-{uuid.uuid4().hex[:8]}"
    app = ChatApp(deployment.settings(user, reconnect_interval=3.0))
    async with app.run_test(size=SIZE):
        await come_online(app)
        await eventually(lambda: "● online" in header_text(app), what="online")
        # Watched from before the drop: rabbitmqctl can take longer to return than the
        # client takes to reconnect, which once hid the whole reconnecting phase.
        seen_reconnecting = asyncio.create_task(
            eventually(
                lambda: "● reconnecting, next try in" in header_text(app),
                timeout=20,
                interval=0.02,
                what="reconnecting",
            )
        )
        await asyncio.to_thread(_close_broker_connection, f'"chat-tui:{user}"')
        await seen_reconnecting
        await eventually(lambda: "● online" in header_text(app), timeout=30, what="back online")


async def test_markup_and_escape_sequences_are_shown_literally(deployment: Deployment) -> None:
    bob = await deployment.client("bob")
    app = ChatApp(deployment.settings("alice"), open_conversation="dm:bob")
    hostile = (
        "[bold]big[/bold] [@click=app.quit]quit[/] [link=https://evil.example]x[/link] "
        "\x1b[2J\x1b]0;pwned\x07 end"
    )
    async with app.run_test(size=(160, 30)):
        await come_online(app)
        await eventually(_knows_user(bob, "alice"), what="bob seeing alice register")
        await bob.send(Conversation.dm("alice"), hostile)
        await eventually(lambda: " end" in message_text(app), what="the message")
        shown = message_text(app)
        assert "[bold]big[/bold] [@click=app.quit]quit[/] [link=https://evil.example]x[/link]" in (
            shown
        )
        assert "<ESC>[2J<ESC>]0;pwned<BEL> end" in shown
        assert "\x1b" not in shown and "\x07" not in shown
        view = main_screen(app).query_one(MessageView)
        for y in range(view.size.height):
            for segment in view.render_line(y):
                style = segment.style
                assert style is None or (not style.link and not style.meta), segment
        assert app.is_running


async def test_help_screen_lists_every_binding_and_slash_command(
    offline_settings: Settings,
) -> None:
    app = ChatApp(offline_settings, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await main_screen_ready(app)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.help_text().plain
        for _title, bindings in ChatApp.help_sections():
            for binding in Binding.make_bindings(bindings):
                assert app.get_key_display(binding) in text, binding
                assert (binding.description or binding.action) in text, binding
        for spec in SLASH_COMMANDS:
            assert f"/{spec.name}" in text and spec.summary in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("ctrl+o", "question_mark")
        assert isinstance(app.screen, HelpScreen)


async def test_header_says_plainly_when_senders_are_not_verified(
    offline_settings: Settings,
) -> None:
    shared_login = ChatApp(offline_settings, connect=False)
    async with shared_login.run_test(size=SIZE):
        await main_screen_ready(shared_login)
        assert "open mode: senders are not verified" in header_text(shared_login)
    own_account = offline_settings.model_copy(
        update={"amqp_url": "amqp://alice:secret@127.0.0.1:1/"}
    )
    assert own_account.accounts_mode
    accounts = ChatApp(own_account, connect=False)
    async with accounts.run_test(size=SIZE):
        await main_screen_ready(accounts)
        assert "not verified" not in header_text(accounts)
        assert "alice" in header_text(accounts)


async def test_composer_sends_on_enter_and_refuses_empty_or_oversized_text(
    sample_settings: Settings,
) -> None:
    app = ChatApp(sample_settings, connect=False, open_conversation="dm:bob")
    async with app.run_test(size=SIZE) as pilot:
        await main_screen_ready(app)
        screen = main_screen(app)
        count = len(screen.view.messages)
        await pilot.press("enter", "space", "space", "enter")
        assert len(screen.view.messages) == count, "an empty input sent something"
        screen.composer.clear()

        await pilot.press(*"two", "ctrl+j", *"lines")
        assert screen.composer.text == "two\nlines"
        await pilot.press("enter")
        assert screen.view.messages[-1].content == "two\nlines"
        assert screen.composer.text == ""
        await pilot.press("up")
        assert screen.composer.text == "two\nlines", "Up did not recall the last sent text"

        screen.composer.load_text("é" * (MAX_CONTENT_BYTES // 2 + 1))
        await pilot.press("enter")
        error = screen.query_one("#composer-error", Static)
        assert error.display and "Too long to send" in str(error.render())
        assert screen.view.messages[-1].content == "two\nlines"

        screen.composer.load_text("/frobnicate")
        await pilot.press("enter")
        assert "unknown command /frobnicate" in str(error.render())
        screen.composer.load_text("//not a command")
        await pilot.press("enter")
        assert screen.view.messages[-1].content == "/not a command"
        assert not error.display


async def test_keys_move_between_conversations(sample_settings: Settings) -> None:
    app = ChatApp(sample_settings, connect=False, open_conversation="group:lobby")
    async with app.run_test(size=SIZE) as pilot:
        await main_screen_ready(app)
        screen = main_screen(app)
        assert rows(app) == [
            "Groups",
            "#dev 2 @",
            "▌#lobby",
            "Direct messages",
            "@bob",
            "@carol 1",
        ]
        await pilot.press("alt+1")
        assert screen.current == Conversation.group("dev")
        assert "alice, can you look?" in message_text(app)
        assert "▌#dev" in rows(app), "opening #dev did not read it"
        await pilot.press("alt+down")
        assert screen.current == Conversation.group("lobby")
        await pilot.press("alt+up")
        assert screen.current == Conversation.group("dev")
        await pilot.press("alt+a")
        assert screen.current == Conversation.dm("carol")
        await pilot.press("ctrl+g", *"bo", "enter")
        await pilot.pause()
        assert screen.current == Conversation.dm("bob")
        await pilot.press("ctrl+b")
        assert not screen.sidebar.display
        await pilot.press("ctrl+b")
        assert screen.sidebar.display


def test_the_switcher_offers_the_listed_conversations_then_a_dm_with_each_other_user() -> None:
    listed = [Conversation.group("lobby"), Conversation.dm("bob")]
    candidates = switcher_candidates(listed, ["alice", "bob", "carol"], "alice")
    assert candidates == [*listed, Conversation.dm("carol")]
    assert listed == [Conversation.group("lobby"), Conversation.dm("bob")]


async def test_theme_and_open_conversation_are_remembered(sample_settings: Settings) -> None:
    first = ChatApp(sample_settings, connect=False)
    async with first.run_test(size=SIZE) as pilot:
        await main_screen_ready(first)
        await pilot.press("alt+4")
        assert main_screen(first).current == Conversation.dm("carol")
        first.theme = "nord"
        await pilot.pause()
    second = ChatApp(sample_settings, connect=False)
    async with second.run_test(size=SIZE):
        await main_screen_ready(second)
        assert second.theme == "nord"
        await eventually(lambda: main_screen(second).current == Conversation.dm("carol"))
        assert "lunch today?" in message_text(second)


async def test_long_conversation_pages_from_the_cache_and_stays_bounded(
    offline_settings: Settings,
) -> None:
    conversation = await fill_long_conversation(offline_settings, "bob", 1500)
    app = ChatApp(offline_settings, connect=False, open_conversation=conversation)
    async with app.run_test(size=SIZE) as pilot:
        await main_screen_ready(app)
        view = main_screen(app).query_one(MessageView)
        assert len(view.messages) == PAGE
        assert "message number 1499" in message_text(app)
        while view.messages[0].content != "message number 0":
            before = view.messages[0].seq
            view.scroll_to(y=0, animate=False, immediate=True)
            await eventually(
                lambda before=before: view.messages[0].seq != before, what="an older page"
            )
            assert len(view.messages) <= MAX_WINDOW
        assert "message number 1499" not in [m.content for m in view.messages]
        view.focus()
        await pilot.press("end")
        await eventually(lambda: "message number 1499" in message_text(app), what="the newest")
        assert view.tail


async def test_second_instance_of_a_user_says_it_is_standby(deployment: Deployment) -> None:
    await deployment.client("alice")  # the first instance, holding the inbox
    settings = deployment.settings("alice", data_dir=deployment.data_dir / "second")
    app = ChatApp(settings)
    async with app.run_test(size=SIZE):
        await come_online(app)
        await eventually(lambda: "STANDBY" in header_text(app), what="the standby notice")


async def test_demo_bots_chat_in_the_lobby_and_dm_the_user(deployment: Deployment) -> None:
    for name in BOT_NAMES[:2]:
        deployment.settings(name)  # so that the cleanup removes the bots' queues
    app = ChatApp(deployment.settings("alice"), demo_bots=2)
    async with app.run_test(size=SIZE):
        await come_online(app)
        await eventually(lambda: f"#{LOBBY}" in " ".join(rows(app)), timeout=30, what="lobby")
        await eventually(
            lambda: any(row.startswith(f"@{BOT_NAMES[0]}") for row in rows(app)),
            timeout=30,
            what="a DM from a bot",
        )
        assert app.demo is not None
        assert "alice" in await app.client.store.members(LOBBY)


async def test_scrolled_up_view_stays_put_and_counts_new_messages(
    deployment: Deployment,
) -> None:
    bob = await deployment.client("bob")
    app = ChatApp(deployment.settings("alice"), open_conversation="dm:bob")
    async with app.run_test(size=SIZE) as pilot:
        await come_online(app)
        await eventually(_knows_user(bob, "alice"), what="bob seeing alice register")
        for n in range(40):
            await bob.send(Conversation.dm("alice"), f"backlog {n}")
        await eventually(lambda: "backlog 39" in message_text(app), what="the backlog")
        await eventually(lambda: "▌@bob" in rows(app), what="the backlog read")
        view = main_screen(app).query_one(MessageView)
        await pilot.pause()
        view.scroll_to(y=0, animate=False, immediate=True)
        await pilot.pause()
        top = view.scroll_offset.y
        assert not view.tail
        for n in range(3):
            await bob.send(Conversation.dm("alice"), f"while away {n}")
        pending = main_screen(app).query_one("#pending", Static)
        await eventually(lambda: "3 new messages" in str(pending.render()), what="3 new")
        assert pending.display and view.scroll_offset.y == top
        assert "while away" not in message_text(app)
        await eventually(lambda: "▌@bob 3" in rows(app), what="3 unread below the viewport")
        await pilot.pause(0.3)
        assert "▌@bob 3" in rows(app), "messages below the viewport counted as read"
        await pilot.press("end")  # in the empty composer
        await eventually(lambda: "while away 2" in message_text(app), what="the newest")
        await eventually(lambda: "▌@bob" in rows(app), what="the new ones read")
        assert view.tail and not pending.display


async def test_messages_count_as_read_only_while_the_terminal_has_focus(
    deployment: Deployment,
) -> None:
    bob = await deployment.client("bob")
    app = ChatApp(deployment.settings("alice"), open_conversation="dm:bob")
    async with app.run_test(size=SIZE) as pilot:
        await come_online(app)
        await eventually(_knows_user(bob, "alice"), what="bob seeing alice register")
        app.post_message(events.AppBlur())
        await pilot.pause()
        assert not app.app_focus
        await bob.send(Conversation.dm("alice"), "are you at your desk?")
        await eventually(lambda: "are you at your desk?" in message_text(app), what="shown")
        await eventually(lambda: "▌@bob 1" in rows(app), what="one unread while away")
        assert "new messages" in message_text(app)
        app.post_message(events.AppFocus())
        await eventually(lambda: "▌@bob" in rows(app), what="read on return")

        async def bob_sees_read() -> bool:
            history = await bob.store.history(Conversation.dm("alice"))
            return history[-1].status == "read"

        await eventually(bob_sees_read, what="the read receipt")


async def test_create_members_and_leave_commands(deployment: Deployment) -> None:
    await deployment.client("bob")
    app = ChatApp(deployment.settings("alice"))
    # Toasts are off in run_test unless asked for; /members answers with one.
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await come_online(app)
        await type_line(pilot, "/create hideout")
        await eventually(lambda: main_screen(app).current == Conversation.group("hideout"))
        await eventually(lambda: "#hideout · 1 member" in _title(app), what="the title")
        await type_line(pilot, "/members")
        await eventually(
            lambda: any("#hideout: 1 members\nalice" in text for text in notification_texts(app)),
            what="the members notification",
        )
        await type_line(pilot, "/leave")
        await eventually(lambda: "hideout" not in " ".join(rows(app)), what="#hideout gone")
        assert "alice" not in await app.client.members("hideout")


def _title(app: ChatApp) -> str:
    return str(main_screen(app).query_one("#title", Static).render())


async def test_command_palette_offers_the_chat_actions(sample_settings: Settings) -> None:
    app = ChatApp(sample_settings, connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await main_screen_ready(app)
        await pilot.press("ctrl+p", *"members of #lobby")
        palette = app.screen
        await eventually(
            lambda: "Members of #lobby" in _palette_text(palette), what="the palette hit"
        )
        await pilot.press("escape")
        await pilot.press("ctrl+p", *"help: keys")
        await eventually(lambda: "Help: keys" in _palette_text(app.screen), what="help hit")
        await pilot.press("enter")
        await eventually(lambda: isinstance(app.screen, HelpScreen), what="the help screen")


def _palette_text(screen: Screen[object]) -> str:
    try:
        options = screen.query_one(CommandList)
    except NoMatches:
        return ""
    return " ".join(str(options.get_option_at_index(i).prompt) for i in range(options.option_count))
