"""History and search in the app (issue 12), driven by Pilot against the real broker
and a real archive: `chat_tui.archive.service.serve` in this process, on a SQLite file,
as `chat-tui archive` runs it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from textual.command import CommandList
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import OptionList

from chat_tui.archive.database import ArchiveDatabase, open_archive_database
from chat_tui.archive.service import serve
from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.core.search import SearchHit
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.models import SendMessage
from chat_tui.protocol.names import group_key
from chat_tui.tui.app import ChatApp
from chat_tui.tui.screens.help_screen import HelpScreen
from chat_tui.tui.screens.main_screen import MainScreen
from chat_tui.tui.screens.search_screen import MATCH_STYLE, SearchScreen, hit_text, query_words
from chat_tui.tui.slash_commands import SlashCommand, parse
from chat_tui.tui.widgets.conversation.message_view import LOADING_OLDER, MessageView
from tests.archive.pg_server import fresh_database
from tests.conftest import Deployment, eventually
from tests.tui.screen_reading import main_screen_ready, message_text, notification_texts


class RunningArchive:
    """One archive worker over the deployment's namespace, and a look at its database."""

    def __init__(self, deployment: Deployment, raw: AbstractRobustConnection, db: str) -> None:
        self._deployment = deployment
        self._raw = raw
        self._settings = deployment.settings("archivist", archive_db=db)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._database: ArchiveDatabase = open_archive_database(db)
        self._database_open = False

    async def start(self) -> None:
        """Run the worker, and return once it consumes the requests queue."""
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(serve(self._settings, self._stop))
        await eventually(self._consuming, timeout=20, what="the archive to consume")
        if not self._database_open:
            await self._database.open()  # the test's own handle, to count what is stored
            self._database_open = True

    async def pause(self) -> None:
        """Stop the worker; its queues stay, and requests wait in them for the next one."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)
            self._task = None

    async def _consuming(self) -> bool:
        channel = await self._raw.channel()
        try:
            queue = await channel.declare_queue(
                self._deployment.names.archive_requests_queue, passive=True
            )
        except aio_pika.exceptions.ChannelClosed:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()
        result = queue.declaration_result
        return result is not None and (result.consumer_count or 0) > 0

    async def stored(self) -> int:
        return await self._database.count()

    async def publish_old(self, messages: list[SendMessage]) -> None:
        """Messages sent before the app's user came along, as their senders published
        them (in open mode the broker takes any sender on the shared login)."""
        channel = await self._raw.channel(publisher_confirms=True)
        try:
            exchange = await channel.get_exchange(self._deployment.names.messages_exchange)
            for message in messages:
                assert message.group_id is not None
                await exchange.publish(
                    aio_pika.Message(
                        message.to_body(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                    ),
                    routing_key=group_key(message.group_id),
                )
        finally:
            await channel.close()

    async def stop(self) -> None:
        await self.pause()
        await self._database.close()
        names = self._deployment.names
        channel = await self._raw.channel()
        for queue in (names.archive_queue, names.archive_requests_queue):
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
        if not channel.is_closed:
            await channel.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def archive(
    request: pytest.FixtureRequest,
    deployment: Deployment,
    raw: AbstractRobustConnection,
    tmp_path: Path,
) -> AsyncIterator[RunningArchive]:
    """The archive on each of its backends: the embedded SQLite file, and PostgreSQL."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            db = str(tmp_path / "archive" / "archive.sqlite3")
        else:
            db = await stack.enter_async_context(fresh_database())
        running = RunningArchive(deployment, raw, db)
        try:
            await running.start()
            yield running
        finally:
            await running.stop()


START = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


def old_group_messages(group: str, count: int, sender: str = "bob") -> list[SendMessage]:
    """History of `group` from before the tests' clients started, a minute apart."""
    return [
        SendMessage(
            message_id=uuid.uuid4(),
            sender_id=sender,
            group_id=group,
            content=f"old message {n} in {group}",
            timestamp=START + timedelta(minutes=n),
        )
        for n in range(count)
    ]


SIZE = (110, 30)
LOBBY = Conversation.group("lobby")


def old_lobby_messages(count: int, special: dict[int, str] | None = None) -> list[SendMessage]:
    """#lobby's history from before the app's user joined: bob's, a minute apart."""
    special = special or {}
    start = datetime.now(UTC) - timedelta(days=3)
    return [
        SendMessage(
            message_id=uuid.uuid4(),
            sender_id="bob",
            group_id="lobby",
            content=special.get(n, f"old message {n} in the lobby"),
            timestamp=start + timedelta(minutes=n),
        )
        for n in range(count)
    ]


async def lobby_with_history(
    deployment: Deployment, archive: RunningArchive, messages: list[SendMessage]
) -> ChatClient:
    """bob creates #lobby and its history is in the archive; bob's client is returned."""
    bob = await deployment.client("bob")
    await bob.create_group("lobby")
    await eventually(lambda: _knows_group(bob, "lobby"), what="#lobby in the directory")
    await archive.publish_old(messages)
    await eventually(
        lambda: _stored(archive, len(messages)), timeout=20, what="the history archived"
    )
    return bob


async def _knows_group(client: ChatClient, group: str) -> bool:
    return group in await client.store.groups()


async def _stored(archive: RunningArchive, count: int) -> bool:
    return await archive.stored() >= count


async def come_online(app: ChatApp) -> MainScreen:
    assert await app.client.wait_online(15), "the app did not come online"
    assert await app.client.wait_directory(10)
    return await main_screen_ready(app)


async def type_line(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*text, "enter")
    await pilot.pause()


def top_lines(view: MessageView) -> list[str]:
    return [view.render_line(y).text for y in range(view.size.height)]


async def test_a_member_who_joins_sees_the_groups_history_and_none_of_it_is_unread(
    deployment: Deployment, archive: RunningArchive
) -> None:
    said = ["morning all", "the build is green", "standup at ten"]
    bob = await deployment.client("bob")
    await bob.create_group("lobby")
    for text in said:
        await bob.send(LOBBY, text)
    await eventually(lambda: _stored(archive, 3), timeout=20, what="bob's messages archived")
    app = ChatApp(deployment.settings("alice"), zone=UTC)
    async with app.run_test(size=SIZE) as pilot:
        screen = await come_online(app)
        await type_line(pilot, "/join lobby")
        await eventually(lambda: screen.current == LOBBY, what="#lobby open")
        await eventually(
            lambda: all(text in message_text(app) for text in said), what="the history shown"
        )
        # In order, and not unread: no divider, no count in the sidebar.
        shown = message_text(app)
        assert shown.index(said[0]) < shown.index(said[1]) < shown.index(said[2])
        assert "new messages" not in shown
        await pilot.pause(0.3)
        summaries = {s.conversation: s for s in await app.client.cache.conversations()}
        assert summaries[LOBBY].unread_count == 0


async def test_scrolling_up_pages_older_history_in_without_a_jump_and_stops_at_the_start(
    deployment: Deployment, archive: RunningArchive
) -> None:
    # 320 messages: a join brings the newest 200, scrolling up fetches the rest.
    history = old_lobby_messages(320)
    await lobby_with_history(deployment, archive, history)
    # Long enough for the paused archive to come back within it.
    app = ChatApp(deployment.settings("alice", archive_timeout=30.0), zone=UTC)
    async with app.run_test(size=SIZE) as pilot:
        screen = await come_online(app)
        await type_line(pilot, "/join lobby")
        await eventually(
            lambda: "old message 319 in the lobby" in message_text(app), what="the backfill"
        )
        view = screen.view
        await eventually(
            lambda: _cached(app, 200), timeout=15, what="200 messages of #lobby cached"
        )
        # Up through the cache's pages to its oldest message: then the archive is asked
        # (paused here, so that the app is seen waiting for it).
        await archive.pause()
        for _ in range(200):
            if view.loading_older:
                break
            view.scroll_to(y=0, animate=False, immediate=True)
            await pilot.pause(0.05)
        assert view.loading_older, "the archive was not asked"
        assert not _has(view, 319 - 200)
        await pilot.pause()
        assert LOADING_OLDER in top_lines(view)[0]
        # What is on screen (below the loading line) stays put when the page lands.
        anchor = view.line_layout.seq_at(view.scroll_offset.y + 1)
        row_before = view.line_layout.start_of(anchor)
        offset_before = (row_before or 0) - view.scroll_offset.y
        await archive.start()
        await eventually(lambda: _has(view, 119), timeout=25, what="the archive's page paged in")
        await pilot.pause()
        row_after = view.line_layout.start_of(anchor)
        assert row_after is not None and row_after - view.scroll_offset.y == offset_before
        assert not view.loading_older and LOADING_OLDER not in top_lines(view)[0]
        # Up to the first message; the archive says there is nothing before it.
        view.focus()
        for _ in range(200):
            if view.at_beginning:
                break
            view.scroll_to(y=0, animate=False, immediate=True)
            await pilot.press("up")
            await pilot.pause(0.05)
        assert view.at_beginning, "the beginning was never reached"
        assert view.messages[0].content == "old message 0 in the lobby"
        view.scroll_to(y=0, animate=False, immediate=True)
        await pilot.pause()
        assert "old message 0 in the lobby" in message_text(app)
        # At the beginning, scrolling up asks nothing more.
        for key in ("up", "home", "up"):
            await pilot.press(key)
            await never(lambda: view.loading_older, 0.3, what="older history asked for again")


async def never(check: Callable[[], bool], seconds: float, what: str) -> None:
    """`check` stays false for `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        assert not check(), what
        await asyncio.sleep(0.02)


def _has(view: MessageView, n: int) -> bool:
    return any(m.content == f"old message {n} in the lobby" for m in view.messages)


async def _cached(app: ChatApp, count: int) -> bool:
    return await app.client.store.message_count(LOBBY) >= count


async def test_search_finds_messages_across_conversations_and_opens_one_highlighted(
    deployment: Deployment, archive: RunningArchive
) -> None:
    # The match at message 30 is older than the 200 a join brings: only the archive has it.
    history = old_lobby_messages(260, {30: "the release notes moved to the wiki"})
    bob = await lobby_with_history(deployment, archive, history)
    app = ChatApp(deployment.settings("alice"), zone=UTC)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await come_online(app)
        await type_line(pilot, "/join lobby")
        await eventually(lambda: _cached(app, 200), timeout=15, what="the backfill")
        await eventually(lambda: _knows_user(bob, "alice"), what="bob seeing alice")
        await bob.send(Conversation.dm("alice"), "did you read the release notes?")
        await eventually(lambda: _cached_dm(app), what="bob's DM cached")
        await type_line(pilot, "/dm bob")
        await eventually(lambda: screen.current == Conversation.dm("bob"), what="@bob open")

        await pilot.press("ctrl+f")
        search = await _search_screen(app)
        await pilot.press(*"release notes", "enter")
        await eventually(lambda: len(search.hits) == 2, timeout=15, what="two results")
        assert search.status == "2 results, from this device and the archive."
        by_conversation = {hit.conversation: hit for hit in search.hits}
        assert by_conversation[Conversation.dm("bob")].in_cache
        assert not by_conversation[LOBBY].in_cache
        rows = _result_rows(search)
        assert any("#lobby" in row and "bob" in row and "[archive]" in row for row in rows)
        assert any("@bob" in row and "[archive]" not in row for row in rows)
        assert all("release notes" in row for row in rows)

        # Enter on the archive-only result: fetched, opened at it, highlighted.
        target = search.hits.index(by_conversation[LOBBY])
        for _ in range(target):
            await pilot.press("down")
        await pilot.press("enter")
        await eventually(lambda: screen.current == LOBBY, timeout=20, what="#lobby opened")
        view = screen.view
        await eventually(lambda: view.found_message is not None, what="the found message")
        found = view.found_message
        assert found is not None and found.content == "the release notes moved to the wiki"
        await pilot.pause()
        assert "the release notes moved to the wiki" in message_text(app)
        assert view.selected_message == found and view.has_focus

        # /search TEXT opens the same list with the text searched; Escape closes it.
        await pilot.press("escape")
        await type_line(pilot, "/search wiki")
        search = await _search_screen(app)
        await eventually(lambda: len(search.hits) == 1, timeout=15, what="one result")
        assert search.hits[0].in_cache  # fetched into the cache when it was opened
        await pilot.press("escape")
        await eventually(lambda: app.screen is screen, what="the search closed")
        assert screen.current == LOBBY


async def _cached_dm(app: ChatApp) -> bool:
    return await app.client.store.message_count(Conversation.dm("bob")) >= 1


async def _knows_user(client: ChatClient, user: str) -> bool:
    return user in await client.store.users()


async def _search_screen(app: ChatApp) -> SearchScreen:
    await eventually(lambda: isinstance(app.screen, SearchScreen), what="the search screen")
    assert isinstance(app.screen, SearchScreen)
    return app.screen


def _result_rows(search: SearchScreen) -> list[str]:
    results = search.query_one(OptionList)
    return [
        " ".join(str(results.get_option_at_index(i).prompt).split())
        for i in range(results.option_count)
    ]


async def test_without_an_archive_the_app_says_once_that_history_is_not_available(
    deployment: Deployment,
) -> None:
    bob = await deployment.client("bob")
    await bob.create_group("lobby")
    await bob.send(LOBBY, "said before alice joined")
    app = ChatApp(deployment.settings("alice", archive_timeout=1.0), zone=UTC)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await come_online(app)
        await type_line(pilot, "/join lobby")
        await eventually(lambda: screen.current == LOBBY, what="#lobby open")
        await eventually(
            lambda: len(_not_available(app)) == 1,
            timeout=15,
            what="the notice that history is not available",
        )
        # Chatting goes on; the search still finds what this device has.
        await type_line(pilot, "hello lobby")
        await eventually(lambda: "hello lobby" in message_text(app), what="the message sent")
        await type_line(pilot, "/search hello")
        search = await _search_screen(app)
        await eventually(lambda: len(search.hits) == 1, timeout=15, what="the local result")
        assert search.status == "1 result on this device; the archive did not answer."
        await pilot.press("escape")
        # Scrolling up past the oldest message asks, fails quietly: still one notice.
        screen.view.focus()
        await pilot.press("home", "up", "up")
        await pilot.pause(1.5)
        assert len(_not_available(app)) == 1
        assert "said before alice joined" not in message_text(app)


def _not_available(app: ChatApp) -> list[str]:
    return [text for text in notification_texts(app) if "not available" in text]


def test_a_result_row_shows_where_and_when_and_highlights_the_words_as_text() -> None:
    hit = SearchHit(
        conversation=LOBBY,
        message_id=str(uuid.uuid4()),
        sender_id="bob",
        sent_at=datetime(2026, 3, 9, 9, 15, tzinfo=UTC),
        snippet='the "release" [bold]notes[/bold]\x1b[31m',
        content='the "release" [bold]notes[/bold]\x1b[31m',
        in_cache=False,
        seq=None,
    )
    row = hit_text(hit, '"release NOTES" NEAR(', UTC)
    assert row.plain == (
        '#lobby  bob  09 Mar 2026 09:15  [archive]\n  the "release" [bold]notes[/bold]<ESC>[31m'
    )
    highlighted = {
        row.plain[span.start : span.end] for span in row.spans if span.style == MATCH_STYLE
    }
    assert highlighted == {"release", "notes"}
    assert query_words('"release NOTES" NEAR(') == ["release", "NOTES", "NEAR"]


def test_search_takes_its_text_as_typed() -> None:
    assert parse("/search #release notes") == SlashCommand("search", "#release notes")
    assert parse("/join #lobby") == SlashCommand("join", "lobby")


async def test_the_palette_and_help_offer_search_and_it_finds_cached_messages_offline(
    sample_settings: Settings,
) -> None:
    app = ChatApp(sample_settings, connect=False, zone=UTC, open_conversation="dm:bob")
    async with app.run_test(size=SIZE) as pilot:
        screen = await main_screen_ready(app)
        await pilot.press("f1")
        await eventually(lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        help_text = app.screen.help_text().plain
        assert "Search messages" in help_text and "/search TEXT" in help_text
        await pilot.press("escape")
        await pilot.press("ctrl+p", *"search messages")
        await eventually(lambda: "Search messages" in _palette_text(app.screen), what="the hit")
        await pilot.press("enter")
        search = await _search_screen(app)
        await pilot.press(*"release notes")
        await eventually(lambda: len(search.hits) == 1, what="the cached result")
        assert search.status.startswith("1 result on this device")
        assert search.hits[0].content == "great, I'll push the release notes"
        await pilot.press("enter")
        await eventually(lambda: screen.current == LOBBY, what="#lobby opened at the result")
        # The conversation is current at once; its page at the result comes a moment later.
        await eventually(lambda: screen.view.found_message is not None, what="the found message")
        assert screen.view.found_message == screen.view.selected_message
        assert screen.view.found_message is not None
        assert screen.view.found_message.content == "great, I'll push the release notes"


async def test_every_footer_key_fits_in_80_columns(sample_settings: Settings) -> None:
    app = ChatApp(sample_settings, connect=False, zone=UTC, open_conversation="group:lobby")
    async with app.run_test(size=(80, 24)) as pilot:
        await main_screen_ready(app)
        await pilot.pause()
        keys = sorted(
            (key.region, " ".join(str(key.render()).split()))
            for key in app.screen.query("FooterKey")
        )
        assert {"^q Quit", "^f Search", "^p palette"} <= {name for _, name in keys}
        # The palette's key is docked right, over whatever runs under it.
        overlapping = [(a, b) for (left, a), (right, b) in pairwise(keys) if left.right > right.x]
        assert overlapping == [], f"covered at 80 columns: {overlapping}"
        assert keys[-1][0].right <= 80, f"off the edge at 80 columns: {keys[-1][1]}"


async def test_the_footer_shows_ctrl_f_for_search_and_help_says_it_whole(
    sample_settings: Settings,
) -> None:
    app = ChatApp(sample_settings, connect=False, zone=UTC, open_conversation="group:lobby")
    async with app.run_test(size=(120, 40)) as pilot:
        await main_screen_ready(app)
        await pilot.pause()
        # Textual's footer keys are widgets of type FooterKey, a name public for styling.
        keys = [" ".join(str(key.render()).split()) for key in app.screen.query("FooterKey")]
        # After Go to, as in the binding table; the keys shown before stay shown.
        assert keys == [
            "⏎ Send", "f1 Help", "^g Go to", "^f Search", "alt+a Next unread", "^q Quit",
            "^p palette",
        ]  # fmt: skip
        await pilot.press("f1")
        await eventually(lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        assert isinstance(app.screen, HelpScreen)
        help_rows = [line.split() for line in app.screen.help_text().plain.splitlines()]
        assert ["^f", "Search", "messages"] in help_rows


def _palette_text(screen: Screen[object]) -> str:
    try:
        options = screen.query_one(CommandList)
    except NoMatches:
        return ""
    return " ".join(str(options.get_option_at_index(i).prompt) for i in range(options.option_count))


async def test_a_new_device_shows_the_history_of_its_users_groups(
    deployment: Deployment, archive: RunningArchive
) -> None:
    bob = await deployment.client("bob")
    await bob.create_group("lobby")
    alice = await deployment.client("alice")
    await alice.join_group("lobby")
    await eventually(lambda: _is_member(bob, "lobby", "alice"), what="alice in #lobby")
    await alice.send(LOBBY, "sent from my old laptop")
    await bob.send(LOBBY, "bob answering it")
    await eventually(lambda: _stored(archive, 2), timeout=20, what="both archived")
    await alice.stop()
    deployment.clients.remove(alice)
    new_laptop = deployment.settings("alice", data_dir=deployment.data_dir / "new-laptop")
    app = ChatApp(new_laptop, zone=UTC)
    async with app.run_test(size=SIZE):
        screen = await come_online(app)
        await eventually(lambda: screen.current == LOBBY, timeout=20, what="#lobby open")
        await eventually(
            lambda: "bob answering it" in message_text(app), timeout=20, what="the history"
        )
        shown = message_text(app)
        assert shown.index("sent from my old laptop") < shown.index("bob answering it")


async def _is_member(client: ChatClient, group: str, user: str) -> bool:
    return user in await client.store.members(group)
