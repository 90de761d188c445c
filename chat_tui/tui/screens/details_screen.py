"""Details of an own message: who received it, who read it, and when."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from chat_tui.core.records import MessageDetails
from chat_tui.tui.formatting import local_time, sender_colour, status_tick, status_words
from chat_tui.tui.literal import literal_text


def _when(moment: datetime | None, zone: tzinfo | None) -> str:
    if moment is None:
        return "—"
    return local_time(moment, zone).strftime("%Y-%m-%d %H:%M:%S")


def details_text(details: MessageDetails, zone: tzinfo | None) -> Text:
    """The message, and for an own message a row per recipient: delivered, read."""
    message = details.message
    text = Text(end="")
    text.append("From ", Style(dim=True))
    text.append(message.sender_id, Style(bold=True, color=sender_colour(message.sender_id)))
    text.append(
        f"  in {message.conversation}  at {_when(message.sent_at, zone)}\n", Style(dim=True)
    )
    text.append_text(literal_text(message.content))
    text.append("\n\n")
    if not message.outgoing:
        text.append("Received by you.", Style(dim=True))
        return text
    text.append("Status: ", Style(bold=True))
    text.append_text(status_tick(message, message.conversation.kind == "group"))
    text.append(f"  ({status_words(message)})\n\n")
    by_member = {r.member_id: r for r in details.receipts}
    members = sorted(set(details.recipients) | set(by_member))
    text.append(f"{'recipient':<20} {'delivered':<20} read\n", Style(bold=True))
    for member in members:
        receipt = by_member.get(member)
        delivered = _when(receipt.delivered_at if receipt else None, zone)
        read = _when(receipt.read_at if receipt else None, zone)
        text.append(f"{member:<20} {delivered:<20} {read}\n")
    if not members:
        text.append("No receipts yet.\n", Style(dim=True))
    return text


class DetailsScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,i", "dismiss", "Close")]

    DEFAULT_CSS = """
    DetailsScreen { align: center middle; }
    DetailsScreen > VerticalScroll {
        width: 90%;
        max-width: 90;
        height: auto;
        max-height: 90%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, text: Text) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.text, id="details-text")
