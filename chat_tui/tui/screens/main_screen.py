"""The main screen: header, conversation list, the open conversation and the composer.

Over 400 lines: the bindings and the one flow between the widgets and the core, which
includes opening a search result (fetched from the archive first if need be). What
each slash command does is in `slash_dispatch.py`, what Enter typed (a command or a
message) in the composer's module, the cache syncs in `read_sync.py` and the counts
in `unread_counts.py`, the order of the conversation list in the sidebar's module,
the switcher's candidates and the search itself in their screens.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

from chat_tui.core.client import ChatClient
from chat_tui.core.errors import ArchiveUnavailableError, ChatError
from chat_tui.core.records import ConversationSummary, StatusChange, StoredMessage
from chat_tui.core.search import SearchHit
from chat_tui.core.status import ClientStatus
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.ids import InvalidIdError
from chat_tui.tui.read_sync import ReadSync
from chat_tui.tui.screens.details_screen import DetailsScreen, details_text
from chat_tui.tui.screens.help_screen import HelpScreen, HelpSection
from chat_tui.tui.screens.search_screen import SearchScreen
from chat_tui.tui.screens.switcher_screen import SwitcherScreen, switcher_candidates
from chat_tui.tui.slash_commands import SlashCommand
from chat_tui.tui.slash_dispatch import run_slash_command
from chat_tui.tui.unread_counts import UnreadCounts
from chat_tui.tui.widgets.conversation.composer import Composer, ComposerArea
from chat_tui.tui.widgets.conversation.message_view import MessageView
from chat_tui.tui.widgets.conversation.pending import PendingNotice
from chat_tui.tui.widgets.conversation.title import ConversationTitle
from chat_tui.tui.widgets.header import StatusHeader
from chat_tui.tui.widgets.sidebar import ConversationList, conversation_after, next_unread

OPEN_CONVERSATION_META = "tui.open_conversation"


class MainScreen(Screen[None]):
    """Carries the core's news to the widgets and what the user does to the core. The
    widgets draw and report; none holds the client, and the message view reads only
    pages of history, from the `HistorySource` it is given."""

    # Priority: these must work while the composer has focus.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help", priority=True),
        Binding("question_mark", "help", "Help", show=False),
        Binding("ctrl+g", "switcher", "Go to", priority=True),
        # The footer's label is short; the help screen and the footer's tooltip say it whole.
        Binding("ctrl+f", "search", "Search", tooltip="Search messages", priority=True),
        # Not in the footer: at 80 columns it pushed Quit off the edge (help lists it).
        Binding("ctrl+b", "toggle_sidebar", "Sidebar", show=False, priority=True),
        Binding("alt+a", "next_unread", "Next unread", priority=True),
        Binding(
            "alt+down,ctrl+pagedown",
            "next_conversation",
            "Next conversation",
            show=False,
            priority=True,
        ),
        Binding(
            "alt+up,ctrl+pageup",
            "previous_conversation",
            "Previous conversation",
            show=False,
            priority=True,
        ),
        *(
            Binding(
                f"alt+{n}", f"open_nth({n})", f"Open conversation {n}", show=False, priority=True
            )
            for n in range(1, 10)
        ),
        Binding("ctrl+o", "focus_messages", "Select messages", show=False),
        Binding("ctrl+l", "focus_sidebar", "Focus conversation list", show=False),
    ]

    DEFAULT_CSS = """
    MainScreen #conversation { width: 1fr; }
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        zone: tzinfo | None = None,
        first_conversation: Conversation | None = None,
        help_sections: Sequence[HelpSection] = (),
    ) -> None:
        super().__init__()
        self.client = client
        self.zone = zone
        self.first_conversation = first_conversation
        self.help_sections = help_sections
        self.current: Conversation | None = None
        self.unread_counts = UnreadCounts()
        self.read_sync = ReadSync(
            self._save_unsaved_reads,
            self._reload_counts,
            lambda loop: self.run_worker(loop, group="store-sync"),
        )

    @property
    def summaries(self) -> dict[Conversation, ConversationSummary]:
        """Each listed conversation's counts, as the sidebar shows them (or is about to)."""
        return self.unread_counts.summaries

    def compose(self) -> ComposeResult:
        yield StatusHeader(
            self.client.me, senders_verified=self.client.settings.accounts_mode, id="header"
        )
        with Horizontal():
            yield ConversationList(id="sidebar")
            with Vertical(id="conversation"):
                yield ConversationTitle(id="title")
                yield MessageView(
                    self.client.cache, self.zone, older=self.client.history, id="messages"
                )
                yield PendingNotice(id="pending")
                yield ComposerArea()
        yield Footer()

    @property
    def view(self) -> MessageView:
        return self.query_one(MessageView)

    @property
    def sidebar(self) -> ConversationList:
        return self.query_one(ConversationList)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    async def on_mount(self) -> None:
        self.query_one(StatusHeader).show_status(self.client.status)
        await self.refresh_sidebar()
        target = self.first_conversation or await self._remembered_conversation()
        if target is None:
            order = self.sidebar.order
            target = next_unread(order, None, self.summaries) or next(iter(order), None)
        if target is not None:
            await self.open_conversation(target)
        else:
            self.query_one(ConversationTitle).show(None, None)
        self.composer.focus()
        self.watch(self.app, "app_focus", self._app_focus_changed, init=False)

    async def _remembered_conversation(self) -> Conversation | None:
        key = await self.client.cache.preference(OPEN_CONVERSATION_META)
        if key is None:
            return None
        try:
            return Conversation.parse(key)
        except ValueError:
            return None

    # --- what the core tells the app ---------------------------------------------------

    async def apply_batch(self, messages: Sequence[StoredMessage]) -> None:
        """Draw what belongs to the open conversation, count everything in the sidebar's
        data; the sidebar itself is redrawn from the cache a moment later (see
        `ReadSync`), so a backlog of many batches does not redraw it for each."""
        here = [m for m in messages if m.conversation == self.current]
        if here:
            self.view.append(here, reader_present=self.app.app_focus)
        self.unread_counts.count(messages)
        if here and self.app.app_focus:
            self.view.report_seen()
        self.read_sync.sync_soon()
        await self._open_something()

    def apply_statuses(self, changes: Sequence[StatusChange]) -> None:
        self.view.update_statuses([c for c in changes if c.conversation == self.current])

    def show_connection(self, status: ClientStatus) -> None:
        self.query_one(StatusHeader).show_status(status)

    async def history_filled(self, conversation: Conversation) -> None:
        """Messages of `conversation` came into the cache from the archive: on a new
        device they may be the first there are, so a conversation may open with them."""
        if conversation == self.current:
            self.view.history_filled()
        await self.refresh_sidebar()
        await self._open_something()

    async def directory_changed(self) -> None:
        await self.refresh_sidebar()
        await self._refresh_title()
        await self._open_something()

    async def _open_something(self) -> None:
        """A first conversation appeared while none was open: open it."""
        if self.current is None and self.summaries:
            self._draw_sidebar()  # a batch only counted it: the order is the sidebar's
            if self.sidebar.order:
                await self.open_conversation(self.sidebar.order[0])

    # --- conversations -----------------------------------------------------------------

    async def refresh_sidebar(self) -> None:
        """Save what was read, then read the counts back from the cache and draw them."""
        await self.read_sync.sync_now()

    async def save_reads(self) -> None:
        """Hand the cache what was read and not yet saved (before the client stops)."""
        await self.read_sync.save_reads()

    async def _save_unsaved_reads(self) -> None:
        for conversation, seq in self.unread_counts.take_reads().items():
            await self.client.mark_read(conversation, seq)

    async def _reload_counts(self) -> None:
        self.unread_counts.reloading()
        summaries = None
        try:
            summaries = await self.client.cache.conversations()
        finally:
            self.unread_counts.reloaded(summaries)
        self._draw_sidebar()

    def _draw_sidebar(self) -> None:
        """Show the counts as they are now (unchanged rows are not redrawn)."""
        try:
            sidebar = self.sidebar
        except NoMatches:
            # The app is closing: a store sync that was waiting for the cache came back
            # after the widgets were removed. The counts are saved; there is nothing
            # left to draw them on.
            return
        sidebar.show(list(self.summaries.values()), self.current)

    async def open_conversation(
        self, conversation: Conversation, *, at_seq: int | None = None
    ) -> None:
        """Show a conversation; only its newest page (or the page at the first unread, or
        the one at the message `at_seq`, highlighted) is read."""
        self.current = conversation
        self._show_composer_error(None)
        summary = self.summaries.get(conversation)
        self.composer.placeholder = f"Message {conversation}"
        last_read_seq = summary.last_read_seq if summary else 0
        if at_seq is None:
            await self.view.open(
                conversation, last_read_seq, summary.unread_count if summary else 0
            )
        else:
            await self.view.open_at(conversation, at_seq, last_read_seq)
        await self._refresh_title()
        # The highlight moves at once; counts follow when the messages are marked read.
        self.unread_counts.opened(conversation)
        self._draw_sidebar()
        self._remember_open(conversation)

    @work(group="remember", exclusive=True)
    async def _remember_open(self, conversation: Conversation) -> None:
        await self.client.cache.set_preference(OPEN_CONVERSATION_META, conversation.key)

    async def _refresh_title(self) -> None:
        members: int | None = None
        if self.current is not None and self.current.kind == "group":
            members = len(await self.client.cache.members(self.current.name))
        self.query_one(ConversationTitle).show(self.current, members)

    def conversation_after(self, step: int) -> Conversation | None:
        return conversation_after(self.sidebar.order, self.current, step)

    # --- widget messages ---------------------------------------------------------------

    @on(ConversationList.Chosen)
    async def _chosen(self, event: ConversationList.Chosen) -> None:
        await self.open_conversation(event.conversation)
        self.composer.focus()

    @on(MessageView.Seen)
    def _seen(self, event: MessageView.Seen) -> None:
        if self.app.app_focus and event.conversation == self.current:
            # Counted as read at once; the cache hears of it with the next sync, so a
            # backlog read batch after batch makes one transaction per interval.
            self.unread_counts.read(event.conversation, event.seq)
            self._draw_sidebar()
            self.read_sync.sync_soon()

    @on(MessageView.PendingChanged)
    def _pending_changed(self, event: MessageView.PendingChanged) -> None:
        self.query_one(PendingNotice).show(event.count)

    @on(MessageView.OlderFailed)
    def _older_failed(self, event: MessageView.OlderFailed) -> None:
        if isinstance(event.error, ArchiveUnavailableError):
            return  # the core says that once for the whole app (ArchiveUnavailable)
        self.notify(str(event.error), title="Older messages", severity="warning", markup=False)

    @on(MessageView.DetailsRequested)
    async def _details_requested(self, event: MessageView.DetailsRequested) -> None:
        details = await self.client.cache.message_details(event.message)
        self.app.push_screen(DetailsScreen(details_text(details, self.zone)))

    @on(MessageView.Left)
    @on(ConversationList.Left)
    def _back_to_composer(self) -> None:
        self.composer.focus()

    @on(Composer.JumpToNewest)
    def _jump_to_newest(self) -> None:
        self.view.action_jump_to_newest()

    @on(ComposerArea.CommandTyped)
    def _command_typed(self, event: ComposerArea.CommandTyped) -> None:
        self.run_slash(event.command)

    @on(ComposerArea.MessageTyped)
    async def _message_typed(self, event: ComposerArea.MessageTyped) -> None:
        await self.send(event.text)

    async def send(self, text: str) -> None:
        """Send `text` to the open conversation, or explain under the composer why not."""
        current = self.current
        if current is None:
            self._show_composer_error("No conversation is open: /join GROUP or /dm USER first.")
            return
        try:
            stored = await self.client.send(current, text)
        except ChatError as exc:
            self._show_composer_error(str(exc))
            return
        self.composer.last_sent = text
        self.composer.clear()
        self.view.append([stored], reader_present=True)
        await self.refresh_sidebar()

    def _show_composer_error(self, text: str | None) -> None:
        self.query_one(ComposerArea).show_error(text)

    def _app_focus_changed(self, focused: bool) -> None:
        if focused:
            self.view.forget_seen()
            self.view.report_seen()

    # --- slash commands (also reached from the command palette) ------------------------

    @work(group="commands")
    async def run_slash(self, command: SlashCommand) -> None:
        try:
            await run_slash_command(self, command)
        except (ChatError, InvalidIdError, ValueError) as exc:
            self._show_composer_error(str(exc))

    # --- actions -----------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.app.screen, HelpScreen):
            self.app.push_screen(HelpScreen(self.help_sections))

    def action_switcher(self) -> None:
        candidates = list(self.sidebar.order)
        self._add_switcher_candidates(candidates)

    @work(group="switcher")
    async def _add_switcher_candidates(self, listed: list[Conversation]) -> None:
        users = await self.client.cache.users()
        candidates = switcher_candidates(listed, users, self.client.me)
        choice = await self.app.push_screen_wait(SwitcherScreen(candidates))
        if choice is not None:
            await self.open_conversation(choice)
            self.composer.focus()

    def action_search(self, query: str = "") -> None:
        """Ctrl+F, /search TEXT: the results across every conversation; Enter opens one."""
        if not isinstance(self.app.screen, SearchScreen):
            self._search(query)

    @work(group="search")
    async def _search(self, query: str) -> None:
        screen = SearchScreen(self.client.history.search, query, self.zone)
        hit = await self.app.push_screen_wait(screen)
        if hit is not None:
            await self.open_hit(hit)

    async def open_hit(self, hit: SearchHit) -> None:
        """Open the conversation of a search result at its message, highlighted; a
        result only the archive has is fetched into the cache first."""
        seq = hit.seq if hit.in_cache else None
        if seq is None:
            self.notify(
                f"Fetching the message from {hit.conversation}'s history…", timeout=3, markup=False
            )
            try:
                seq = (await self.client.history.open_hit(hit)).seq
            except ChatError as exc:
                self.notify(str(exc), title="Search", severity="warning", markup=False)
                return
        await self.open_conversation(hit.conversation, at_seq=seq)
        self.view.focus()

    def action_toggle_sidebar(self) -> None:
        sidebar = self.sidebar
        sidebar.display = not sidebar.display
        if not sidebar.display and sidebar.has_focus:
            self.composer.focus()

    async def action_next_conversation(self) -> None:
        target = self.conversation_after(1)
        if target is not None:
            await self.open_conversation(target)

    async def action_previous_conversation(self) -> None:
        target = self.conversation_after(-1)
        if target is not None:
            await self.open_conversation(target)

    async def action_next_unread(self) -> None:
        target = next_unread(self.sidebar.order, self.current, self.summaries)
        if target is None:
            self.notify("No unread messages.")
        else:
            await self.open_conversation(target)

    async def action_open_nth(self, n: int) -> None:
        order = self.sidebar.order
        if 0 < n <= len(order):
            await self.open_conversation(order[n - 1])

    def action_focus_messages(self) -> None:
        self.view.focus()

    def action_focus_sidebar(self) -> None:
        if not self.sidebar.display:
            self.sidebar.display = True
        self.sidebar.focus()
