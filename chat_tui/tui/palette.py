"""The chat actions in Textual's command palette (Ctrl+P).

The provider knows the app only as a `PaletteHost`, so that the app, which lists this
provider, and the palette do not import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider

from chat_tui.core.client import ChatClient
from chat_tui.protocol.ids import is_valid_id
from chat_tui.tui.slash_commands import SlashCommand

PaletteCommand = tuple[str, Callable[[], object], str]


class PaletteTarget(Protocol):
    """What the palette lists from and runs on: the main screen."""

    @property
    def client(self) -> ChatClient: ...

    def run_slash(self, command: SlashCommand) -> object: ...

    def action_switcher(self) -> None: ...

    def action_search(self, query: str = "") -> None: ...

    def action_toggle_sidebar(self) -> None: ...


@runtime_checkable
class PaletteHost(Protocol):
    """An app with a main screen once it has started (None before)."""

    @property
    def main_screen(self) -> PaletteTarget | None: ...


class ChatCommands(Provider):
    """Join, leave, create, DM, members, search, help, quit: the slash commands, with names
    filled in."""

    def _screen(self) -> PaletteTarget | None:
        app = self.app
        return app.main_screen if isinstance(app, PaletteHost) else None

    async def _commands(self) -> list[PaletteCommand]:
        found = self._screen()
        if found is None:
            return []
        screen: PaletteTarget = found  # narrowed for the closure below
        client = screen.client
        mine = set(await client.my_groups())
        commands: list[PaletteCommand] = []

        def slash(name: str, argument: str | None = None) -> Callable[[], object]:
            return partial(screen.run_slash, SlashCommand(name, argument))

        for group in await client.cache.groups():
            if group in mine:
                commands.append((f"Leave #{group}", slash("leave", group), "leave the group"))
                commands.append(
                    (f"Members of #{group}", slash("members", group), "list who is in it")
                )
            else:
                commands.append((f"Join #{group}", slash("join", group), "join the group"))
        for user in await client.cache.users():
            if user != client.me:
                commands.append((f"Message @{user}", slash("dm", user), "open the DM"))
        commands.append(("Help: keys and commands", slash("help"), "F1"))
        commands.append(("Quick switcher", screen.action_switcher, "Ctrl+G"))
        commands.append(("Search messages", screen.action_search, "Ctrl+F, /search TEXT"))
        commands.append(("Toggle sidebar", screen.action_toggle_sidebar, "Ctrl+B"))
        commands.append(("Quit chat-tui", slash("quit"), "Ctrl+Q"))
        return commands

    async def discover(self) -> Hits:
        for name, callback, help_text in await self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in await self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
        words = query.split()
        screen = self._screen()
        if screen is not None and len(words) == 2 and words[0].lower() in ("create", "new"):
            group = words[1].removeprefix("#")
            if is_valid_id(group):
                yield Hit(
                    1.0,
                    f"Create group #{group}",
                    partial(screen.run_slash, SlashCommand("create", group)),
                    help="create, join and open it",
                )
