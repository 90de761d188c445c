"""Slash commands typed in the composer: parsing only; the screen carries them out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlashCommandSpec:
    name: str
    arguments: str
    summary: str

    @property
    def takes_a_name(self) -> bool:
        """Whether the argument is a group or user ID (typed with its # or @, or not)."""
        return self.arguments.strip("[]") in ("GROUP", "USER")


SLASH_COMMANDS: tuple[SlashCommandSpec, ...] = (
    SlashCommandSpec("join", "GROUP", "join a group and open it"),
    SlashCommandSpec("leave", "[GROUP]", "leave a group (the open one by default)"),
    SlashCommandSpec("create", "GROUP", "create a group, join it and open it"),
    SlashCommandSpec("dm", "USER", "open the direct conversation with a user"),
    SlashCommandSpec("members", "[GROUP]", "list the members of a group"),
    SlashCommandSpec("search", "TEXT", "search every conversation (Ctrl+F)"),
    SlashCommandSpec("help", "", "show every key binding and command"),
    SlashCommandSpec("quit", "", "leave chat-tui"),
)
NAMES = {spec.name: spec for spec in SLASH_COMMANDS}


@dataclass(frozen=True)
class SlashCommand:
    name: str
    argument: str | None


class SlashCommandError(ValueError):
    """Unknown command or missing argument; the text is shown under the composer."""


def parse(text: str) -> SlashCommand | None:
    """A command if `text` starts with one slash; `//text` sends `/text` literally."""
    stripped = text.strip()
    if not stripped.startswith("/") or stripped.startswith("//"):
        return None
    word, _, rest = stripped[1:].partition(" ")
    name = word.lower()
    spec = NAMES.get(name)
    if spec is None:
        raise SlashCommandError(f"unknown command /{word}; /help lists them")
    argument = rest.strip() or None
    if argument is not None and spec.takes_a_name:
        argument = argument.removeprefix("#").removeprefix("@")
    if spec.arguments and not spec.arguments.startswith("[") and argument is None:
        raise SlashCommandError(f"usage: /{spec.name} {spec.arguments}")
    return SlashCommand(name, argument)


def unescape(text: str) -> str:
    """`//text` is sent as `/text`."""
    return text[1:] if text.lstrip().startswith("//") else text
