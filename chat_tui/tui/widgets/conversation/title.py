"""The line above the messages: `#group · 5 members` or `@peer`."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from chat_tui.protocol.conversations import Conversation


def title_text(conversation: Conversation | None, members: int | None) -> Text:
    text = Text(end="")
    if conversation is None:
        text.append("No conversation open: /join GROUP, /dm USER or Ctrl+G", Style(dim=True))
        return text
    text.append(str(conversation), Style(bold=True))
    if conversation.kind == "group" and members is not None:
        text.append(f" · {members} member{'s' if members != 1 else ''}", Style(dim=True))
    elif conversation.kind == "dm":
        text.append(" · direct messages", Style(dim=True))
    return text


class ConversationTitle(Static):
    DEFAULT_CSS = """
    ConversationTitle {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    """

    def show(self, conversation: Conversation | None, members: int | None) -> None:
        self.update(title_text(conversation, members))
