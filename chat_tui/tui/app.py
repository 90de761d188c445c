"""ChatApp: the full-screen face. It owns the client and hands the core's news to the screen."""

from __future__ import annotations

import gc
import logging
from dataclasses import replace
from datetime import tzinfo
from typing import ClassVar

from textual import on
from textual.app import App
from textual.binding import Binding, BindingType
from textual.theme import Theme

from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.core.errors import ChatError
from chat_tui.core.status import ClientStatus, ConnectionState
from chat_tui.protocol.conversations import Conversation
from chat_tui.tui.app_sink import AppSink
from chat_tui.tui.demo import DemoBots
from chat_tui.tui.messages import (
    ArchiveUnavailable,
    BatchArrived,
    ConnectionChanged,
    DirectoryChanged,
    HistoryFilled,
    ProblemReported,
    StatusesChanged,
)
from chat_tui.tui.palette import ChatCommands
from chat_tui.tui.screens.help_screen import HelpSection
from chat_tui.tui.screens.main_screen import MainScreen
from chat_tui.tui.screens.search_screen import SearchScreen
from chat_tui.tui.terminal_keys import report_alt_digits
from chat_tui.tui.widgets.conversation.composer import Composer
from chat_tui.tui.widgets.conversation.message_view import MessageView
from chat_tui.tui.widgets.sidebar import ConversationList

log = logging.getLogger(__name__)

THEME_META = "tui.theme"
NOT_CONNECTING = ClientStatus(ConnectionState.OFFLINE, error="not connecting")


class ChatApp(App[None]):
    """`ChatApp(settings)`; tests and benchmarks pass `connect=False` (no broker),
    `open_conversation` (shown first) and `zone` (fixed time zone)."""

    TITLE = "chat-tui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+t", "change_theme", "Theme", show=False),
    ]
    COMMANDS = App.COMMANDS | {ChatCommands}

    def __init__(
        self,
        settings: Settings,
        *,
        demo_bots: int = 0,
        open_conversation: Conversation | str | None = None,
        zone: tzinfo | None = None,
        connect: bool = True,
    ) -> None:
        super().__init__()
        report_alt_digits()
        self.settings = settings
        self.client = ChatClient(settings, AppSink(self))
        self.demo_bots = demo_bots
        self.demo: DemoBots | None = None
        if isinstance(open_conversation, str):
            open_conversation = Conversation.parse(open_conversation)
        self.first_conversation = open_conversation
        self.zone = zone
        self.connects = connect
        self.main_screen: MainScreen | None = None
        self._started = False
        self._told_standby = False

    @staticmethod
    def help_sections() -> list[HelpSection]:
        """Every binding table of the app, for the help screen (so it cannot drift)."""
        palette = Binding(App.COMMAND_PALETTE_BINDING, "command_palette", "Command palette")
        return [
            ("Anywhere", [*ChatApp.BINDINGS, palette, *MainScreen.BINDINGS]),
            ("Composer", Composer.BINDINGS),
            ("Message list (Ctrl+O focuses it)", MessageView.BINDINGS),
            ("Conversation list (Ctrl+L)", ConversationList.BINDINGS),
            ("Search (Ctrl+F)", SearchScreen.BINDINGS),
        ]

    async def on_mount(self) -> None:
        try:
            await self.client.start(connect=self.connects)
        except ChatError as exc:
            self.exit(return_code=1, message=str(exc))
            return
        self._started = True
        remembered = await self.client.cache.preference(THEME_META)
        theme = remembered or self.settings.theme
        if theme in self.available_themes:
            self.theme = theme
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.main_screen = MainScreen(
            self.client,
            zone=self.zone,
            first_conversation=self.first_conversation,
            help_sections=self.help_sections(),
        )
        await self.push_screen(self.main_screen)
        # What exists now (Textual, the widgets, the imported modules) lives as long as
        # the app: keep it out of the garbage collector's full collections, whose pauses
        # grow with the heap and froze the screen during a backlog drain.
        gc.freeze()
        if not self.connects:
            self.main_screen.show_connection(NOT_CONNECTING)
        if self.demo_bots:
            self.demo = DemoBots(self.settings, self.demo_bots, self.client, notify=self.notify)
            self.run_worker(self.demo.run(), group="demo", exit_on_error=False)

    async def on_unmount(self) -> None:
        gc.unfreeze()
        if self.demo is not None:
            await self.demo.stop()
        if self._started:
            try:
                if self.main_screen is not None:
                    # Reads are saved a moment after they happen: save the last ones.
                    await self.main_screen.save_reads()
            finally:
                await self.client.stop()

    async def _remember_theme(self, theme: Theme) -> None:
        if self._started:
            await self.client.cache.set_preference(THEME_META, theme.name)

    # --- the core's news (see app_sink.py) -------------------------------------------------

    @on(BatchArrived)
    async def _batch_arrived(self, message: BatchArrived) -> None:
        try:
            if self.main_screen is None:
                raise RuntimeError("the screen is not ready")
            await self.main_screen.apply_batch(message.messages)
        except Exception as exc:
            if not message.applied.done():
                message.applied.set_exception(exc)
            log.exception("could not show a batch")
        else:
            if not message.applied.done():
                message.applied.set_result(None)

    @on(StatusesChanged)
    def _statuses_changed(self, message: StatusesChanged) -> None:
        if self.main_screen is not None:
            self.main_screen.apply_statuses(message.changes)

    @on(ConnectionChanged)
    def _connection_changed(self, message: ConnectionChanged) -> None:
        status = message.status
        if not self.connects:
            status = replace(NOT_CONNECTING, unsent_messages=status.unsent_messages)
        if status.standby and not self._told_standby:
            self._told_standby = True
            self.notify(
                f"Another chat-tui is already running for {self.client.me} and receives the "
                "messages. This one waits as a standby and takes over when that one quits.",
                title="Standby",
                severity="warning",
                timeout=15,
                markup=False,
            )
        if self.main_screen is not None and self.main_screen.is_mounted:
            self.main_screen.show_connection(status)

    @on(DirectoryChanged)
    async def _directory_changed(self) -> None:
        if self.main_screen is not None and self.main_screen.is_mounted:
            await self.main_screen.directory_changed()

    @on(HistoryFilled)
    async def _history_filled(self, message: HistoryFilled) -> None:
        if self.main_screen is not None and self.main_screen.is_mounted:
            await self.main_screen.history_filled(message.conversation)

    @on(ArchiveUnavailable)
    def _archive_unavailable(self, message: ArchiveUnavailable) -> None:
        self.notify(message.text, title="History", timeout=15, markup=False)

    @on(ProblemReported)
    def _problem(self, message: ProblemReported) -> None:
        self.notify(message.text, severity="warning", timeout=8, markup=False)
