"""The composer area: a multi-line TextArea where Enter sends and Ctrl+J adds a line, the
line under it that says why what was typed was not sent, and what Enter typed: a slash
command or a message (`slash_commands.py` parses it; the screen carries it out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static, TextArea

from chat_tui.protocol.models import MAX_CONTENT_BYTES
from chat_tui.tui.slash_commands import SlashCommand, SlashCommandError, parse, unescape


def size_error(text: str) -> str | None:
    """The inline error for text over the protocol's limit, or None."""
    size = len(text.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        return (
            f"Too long to send: {size:,} bytes of UTF-8, the limit is {MAX_CONTENT_BYTES:,}. "
            "Shorten it or split it."
        )
    return None


class Composer(TextArea):
    """Posts `Composer.Submitted` with the text; never sends by itself."""

    # Enter, Ctrl+J and Up are handled in _on_key (TextArea would otherwise insert a
    # newline or move the cursor first); they are listed here so that the footer and
    # the help screen show them.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Send"),
        # Not in the footer: the composer's border already says it.
        Binding("ctrl+j,shift+enter", "newline", "New line", show=False),
        Binding("up", "recall", "Recall last sent (when empty)", show=False),
    ]

    DEFAULT_CSS = """
    Composer {
        height: auto;
        min-height: 2;
        max-height: 8;
        border: none;
        border-top: solid $panel;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    Composer:focus { border: none; border-top: solid $accent; }
    """

    @dataclass
    class Submitted(Message):
        composer: Composer
        text: str

    @dataclass
    class JumpToNewest(Message):
        """End in an empty composer: the message list should go back to the newest."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.border_title = "Enter sends · Ctrl+J new line · F1 help"
        self.last_sent: str | None = None

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.action_submit()
            return
        if event.key in ("ctrl+j", "shift+enter"):
            event.stop()
            event.prevent_default()
            self.action_newline()
            return
        if event.key == "up" and not self.text and self.last_sent:
            event.stop()
            event.prevent_default()
            self.action_recall()
            return
        if event.key == "end" and not self.text:
            event.stop()
            event.prevent_default()
            self.post_message(self.JumpToNewest())
            return
        await super()._on_key(event)

    def action_submit(self) -> None:
        self.post_message(self.Submitted(self, self.text))

    def action_newline(self) -> None:
        self.insert("\n")

    def action_recall(self) -> None:
        if not self.text and self.last_sent:
            self.load_text(self.last_sent)
            self.move_cursor(self.document.end)


class ComposerError(Static):
    """Hidden until `show()` is given a text."""

    DEFAULT_CSS = """
    ComposerError {
        height: auto;
        display: none;
        color: $error;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        # Errors can quote what the user typed: never markup.
        super().__init__(id=id, markup=False)

    def show(self, text: str | None) -> None:
        self.display = bool(text)
        self.update(text or "")


class ComposerArea(Vertical):
    """The composer and its error line. Enter posts `CommandTyped` or `MessageTyped`;
    a line that is neither (blank, an unknown command, too long to send) goes no
    further."""

    DEFAULT_CSS = """
    ComposerArea { height: auto; }
    """

    @dataclass
    class CommandTyped(Message):
        """A slash command; the composer has been cleared."""

        command: SlashCommand

    @dataclass
    class MessageTyped(Message):
        """Text to send (`//text` already made `/text`); the composer still holds it."""

        text: str

    def compose(self) -> ComposeResult:
        yield Composer(id="composer")
        yield ComposerError(id="composer-error")

    def show_error(self, text: str | None) -> None:
        """Say why what was typed was not sent (None hides the line)."""
        self.query_one(ComposerError).show(text)

    @on(Composer.Submitted)
    def _submitted(self, event: Composer.Submitted) -> None:
        event.stop()
        text = event.text
        self.show_error(None)
        if not text.strip():
            return
        try:
            command = parse(text)
        except SlashCommandError as exc:
            self.show_error(str(exc))
            return
        if command is not None:
            event.composer.clear()
            self.post_message(self.CommandTyped(command))
            return
        text = unescape(text)
        error = size_error(text)
        if error is not None:
            self.show_error(error)
            return
        self.post_message(self.MessageTyped(text))
