"""What each slash command does, by name: `slash_commands.py` parses them, this module
carries them out on the main screen (typed in the composer or chosen in the palette)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from chat_tui.core.errors import ChatError
from chat_tui.protocol.conversations import Conversation
from chat_tui.tui.slash_commands import SLASH_COMMANDS, SlashCommand, SlashCommandError


class GroupActions(Protocol):
    """The client's group operations that slash commands use."""

    async def join_group(self, group_id: str) -> None: ...

    async def create_group(self, group_id: str) -> None: ...

    async def leave_group(self, group_id: str) -> None: ...

    async def members(self, group_id: str) -> list[str]: ...


class Exits(Protocol):
    def exit(self) -> None: ...


class SlashTarget(Protocol):
    """What a slash command may ask of the main screen."""

    @property
    def client(self) -> GroupActions: ...

    @property
    def current(self) -> Conversation | None: ...

    @property
    def app(self) -> Exits: ...

    async def open_conversation(self, conversation: Conversation) -> None: ...

    async def refresh_sidebar(self) -> None: ...

    def conversation_after(self, step: int) -> Conversation | None:
        """The conversation `step` rows after the open one in the sidebar."""
        ...

    def action_help(self) -> None: ...

    def action_search(self, query: str = "") -> None: ...

    def notify(self, message: str, *, title: str = "", markup: bool = True) -> None: ...


async def run_slash_command(screen: SlashTarget, command: SlashCommand) -> None:
    """Carry out a parsed command; a `ChatError` or `ValueError` explains a refusal."""
    await SLASH_HANDLERS[command.name](screen, command.argument)


def _required(argument: str | None, command: str) -> str:
    # parse() refuses these commands without an argument, and the palette always gives one.
    if argument is None:
        raise SlashCommandError(f"/{command} needs an argument")
    return argument


def _current_group(screen: SlashTarget, verb: str) -> str:
    current = screen.current
    if current is None or current.kind != "group":
        raise ChatError(f"which group? The open conversation is not a group to {verb}.")
    return current.name


async def _help(screen: SlashTarget, argument: str | None) -> None:
    screen.action_help()


async def _quit(screen: SlashTarget, argument: str | None) -> None:
    screen.app.exit()


async def _dm(screen: SlashTarget, argument: str | None) -> None:
    await screen.open_conversation(Conversation.dm(_required(argument, "dm")))


async def _join(screen: SlashTarget, argument: str | None) -> None:
    group = _required(argument, "join")
    await screen.client.join_group(group)
    screen.notify(f"Joined #{group}", markup=False)
    await screen.open_conversation(Conversation.group(group))


async def _create(screen: SlashTarget, argument: str | None) -> None:
    group = _required(argument, "create")
    await screen.client.create_group(group)
    screen.notify(f"Created #{group}", markup=False)
    await screen.open_conversation(Conversation.group(group))


async def _leave(screen: SlashTarget, argument: str | None) -> None:
    group = argument or _current_group(screen, "leave")
    await screen.client.leave_group(group)
    screen.notify(f"Left #{group}", markup=False)
    await screen.refresh_sidebar()
    if screen.current == Conversation.group(group):
        following = screen.conversation_after(1)
        if following is not None and following != screen.current:
            await screen.open_conversation(following)


async def _members(screen: SlashTarget, argument: str | None) -> None:
    group = argument or _current_group(screen, "list the members of")
    members = await screen.client.members(group)
    screen.notify(
        ", ".join(members) or "nobody",
        title=f"#{group}: {len(members)} members",
        markup=False,
    )


async def _search(screen: SlashTarget, argument: str | None) -> None:
    screen.action_search(_required(argument, "search"))


SlashHandler = Callable[[SlashTarget, str | None], Awaitable[None]]
SLASH_HANDLERS: dict[str, SlashHandler] = {
    "join": _join,
    "leave": _leave,
    "create": _create,
    "dm": _dm,
    "members": _members,
    "search": _search,
    "help": _help,
    "quit": _quit,
}
"""One handler per name in `SLASH_COMMANDS`."""

if SLASH_HANDLERS.keys() != {spec.name for spec in SLASH_COMMANDS}:
    # Fail at import, not when a user first types the command that was forgotten.
    raise RuntimeError("every slash command needs exactly one handler")
