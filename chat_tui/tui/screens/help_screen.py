"""F1 / ?: every key binding and slash command, generated from the binding tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from chat_tui.tui.slash_commands import SLASH_COMMANDS

HelpSection = tuple[str, Sequence[BindingType]]


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[list[Binding], str]]:
    """Bindings grouped by action, in table order: ([bindings], description). A binding
    with a tooltip is described by it: its footer label is the short form."""
    grouped: dict[str, list[Binding]] = {}
    for binding in Binding.make_bindings(bindings):
        grouped.setdefault(binding.action, []).append(binding)
    return [(keys, _described(keys[0])) for keys in grouped.values()]


def _described(binding: Binding) -> str:
    return binding.tooltip or binding.description or binding.action


class HelpScreen(ModalScreen[None]):
    """Lists the sections it is given; Escape, q, F1 or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,f1,question_mark", "dismiss", "Close help"),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%;
        max-width: 90;
        height: 90%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, sections: Sequence[HelpSection]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.help_text(), id="help-text")

    def help_text(self) -> Text:
        heading = Style(bold=True, underline=True)
        key_style = Style(bold=True, color="#e5c07b")
        text = Text(end="")
        text.append("chat-tui help", Style(bold=True))
        text.append("   (Esc closes)\n")
        for title, bindings in self.sections:
            text.append(f"\n{title}\n", heading)
            for keys, description in binding_rows(bindings):
                shown = " / ".join(self.app.get_key_display(b) for b in keys)
                text.append(f"  {shown:<22}", key_style)
                text.append(f" {description}\n")
        text.append("\nSlash commands (type in the composer)\n", heading)
        for spec in SLASH_COMMANDS:
            usage = f"/{spec.name} {spec.arguments}".rstrip()
            text.append(f"  {usage:<22}", key_style)
            text.append(f" {spec.summary}\n")
        text.append("\nNotes\n", heading)
        text.append(
            "  Ctrl+J inserts a new line in every terminal; Shift+Enter works only where the\n"
            "  terminal reports it (kitty keyboard protocol: kitty, WezTerm, foot, Ghostty).\n"
            "  //text sends a message that starts with a slash.\n"
            "  End in an empty composer (or in the message list) jumps to the newest message.\n"
            "  Escape in the message list or the conversation list goes back to the composer.\n"
            "  Scrolling up past the oldest message on this device fetches older ones from\n"
            '  the archive ("loading older messages" at the top meanwhile).\n'
            "  Enter on a search result opens its conversation at the message, highlighted;\n"
            "  [archive] marks a result that is not on this device yet.\n"
            "  Ticks: ◷ queued (waiting for the broker), ✓ sent, ✓✓ delivered, ✓✓ read;\n"
            "  groups count them: ✓✓ 2/5 delivered, read 3/5.\n"
        )
        return text
