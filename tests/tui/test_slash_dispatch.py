"""Each slash command is carried out from one table, without Textual: a fake screen
records what the command asked of it."""

from __future__ import annotations

import pytest

from chat_tui.core.errors import ChatError
from chat_tui.protocol.conversations import Conversation
from chat_tui.tui.slash_commands import SLASH_COMMANDS, SlashCommand
from chat_tui.tui.slash_dispatch import SLASH_HANDLERS, run_slash_command


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def join_group(self, group_id: str) -> None:
        self.calls.append(("join", group_id))

    async def create_group(self, group_id: str) -> None:
        self.calls.append(("create", group_id))

    async def leave_group(self, group_id: str) -> None:
        self.calls.append(("leave", group_id))

    async def members(self, group_id: str) -> list[str]:
        return ["alice", "bob"]


class FakeApp:
    def __init__(self) -> None:
        self.exited = False

    def exit(self) -> None:
        self.exited = True


class FakeScreen:
    def __init__(self, current: Conversation | None, order: list[Conversation]) -> None:
        self.client = FakeClient()
        self.current = current
        self.app = FakeApp()
        self.order = order
        self.opened: list[Conversation] = []
        self.notified: list[tuple[str, str]] = []
        self.helped = False
        self.refreshed = 0

    async def open_conversation(self, conversation: Conversation) -> None:
        self.opened.append(conversation)
        self.current = conversation

    async def refresh_sidebar(self) -> None:
        self.refreshed += 1
        if self.current is not None and self.current in self.order:
            self.order.remove(self.current)

    def conversation_after(self, step: int) -> Conversation | None:
        return self.order[0] if self.order else None

    def action_help(self) -> None:
        self.helped = True

    def notify(self, message: str, *, title: str = "", markup: bool = True) -> None:
        assert markup is False, "names typed by users are never markup"
        self.notified.append((title, message))


def test_every_slash_command_has_exactly_one_handler() -> None:
    assert SLASH_HANDLERS.keys() == {spec.name for spec in SLASH_COMMANDS}


async def test_join_and_create_tell_the_client_then_open_the_group() -> None:
    screen = FakeScreen(None, [])
    await run_slash_command(screen, SlashCommand("join", "devs"))
    await run_slash_command(screen, SlashCommand("create", "ops"))
    assert screen.client.calls == [("join", "devs"), ("create", "ops")]
    assert screen.opened == [Conversation.group("devs"), Conversation.group("ops")]
    assert screen.notified == [("", "Joined #devs"), ("", "Created #ops")]


async def test_leave_without_a_name_leaves_the_open_group_and_opens_the_next() -> None:
    devs, bob = Conversation.group("devs"), Conversation.dm("bob")
    screen = FakeScreen(devs, [devs, bob])
    await run_slash_command(screen, SlashCommand("leave", None))
    assert screen.client.calls == [("leave", "devs")]
    assert screen.refreshed == 1
    assert screen.opened == [bob]


async def test_members_and_leave_need_a_group_when_a_dm_is_open() -> None:
    screen = FakeScreen(Conversation.dm("bob"), [])
    for name in ("members", "leave"):
        with pytest.raises(ChatError, match=r"which group\?"):
            await run_slash_command(screen, SlashCommand(name, None))
    assert screen.client.calls == []
    await run_slash_command(screen, SlashCommand("members", "devs"))
    assert screen.notified == [("#devs: 2 members", "alice, bob")]


async def test_dm_help_and_quit() -> None:
    screen = FakeScreen(None, [])
    await run_slash_command(screen, SlashCommand("dm", "bob"))
    await run_slash_command(screen, SlashCommand("help", None))
    await run_slash_command(screen, SlashCommand("quit", None))
    assert screen.opened == [Conversation.dm("bob")]
    assert screen.helped and screen.app.exited
