"""The conversation list: Groups, then Direct messages, with unread counts and mentions."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from chat_tui.core.records import ConversationSummary
from chat_tui.protocol.conversations import Conversation

SECTION_STYLE = Style(bold=True, dim=True)


def row_text(summary: ConversationSummary, width: int, is_open: bool) -> Text:
    """One row: `#name    3 @`; bold while unread, marked when open."""
    unread = summary.unread_count
    badge = ""
    if unread:
        badge = f" {unread if unread < 1000 else '999+'}"
    if summary.mentioned:
        badge += " @"
    name = str(summary.conversation)
    room = max(4, width - len(badge) - 2)
    if len(name) > room:
        name = name[: room - 1] + "…"
    text = Text(end="")
    text.append("▌" if is_open else " ", Style(color="#61afef", bold=True))
    text.append(name.ljust(room), Style(bold=bool(unread)))
    if unread:
        text.append(badge, Style(bold=True, color="#e06c75" if summary.mentioned else "#e5c07b"))
    return text


def conversation_after(
    order: Sequence[Conversation], current: Conversation | None, step: int
) -> Conversation | None:
    """The conversation `step` rows after `current`, round the list (the first row if
    `current` is not listed)."""
    if not order:
        return None
    if current not in order:
        return order[0]
    return order[(order.index(current) + step) % len(order)]


def next_unread(
    order: Sequence[Conversation],
    current: Conversation | None,
    summaries: Mapping[Conversation, ConversationSummary],
) -> Conversation | None:
    """The first conversation with unread messages below `current`, round the list."""
    start = order.index(current) + 1 if current in order else 0
    for conversation in [*order[start:], *order[:start]]:
        summary = summaries.get(conversation)
        if conversation != current and summary is not None and summary.unread_count:
            return conversation
    return None


class ConversationList(OptionList):
    """Select a row to open that conversation."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Back to composer", show=False),
    ]

    DEFAULT_CSS = """
    ConversationList {
        width: 24;
        height: 1fr;
        border: none;
        border-right: tall $panel;
        padding: 0;
        scrollbar-size-vertical: 1;
    }
    ConversationList:focus { border: none; border-right: tall $accent; }
    """

    @dataclass
    class Chosen(Message):
        conversation: Conversation

    @dataclass
    class Left(Message):
        """Escape: focus should go back to the composer."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.summaries: list[ConversationSummary] = []
        self.open_conversation: Conversation | None = None
        self._ids: list[str | None] = []
        self._signatures: list[object] = []

    @property
    def order(self) -> list[Conversation]:
        """Conversations in display order: groups, then direct messages."""
        return [s.conversation for s in _sorted(self.summaries)]

    def show(
        self, summaries: Sequence[ConversationSummary], open_conversation: Conversation | None
    ) -> None:
        self.summaries = list(summaries)
        self.open_conversation = open_conversation
        width = max(10, (self.size.width or 24) - 2)
        options: list[Option] = []
        ordered = _sorted(self.summaries)
        for kind, title in (("group", "Groups"), ("dm", "Direct messages")):
            options.append(Option(Text(title, SECTION_STYLE), id=f"section:{kind}", disabled=True))
            rows = [s for s in ordered if s.conversation.kind == kind]
            if not rows:
                options.append(
                    Option(Text("  (none)", Style(dim=True)), id=f"none:{kind}", disabled=True)
                )
            for summary in rows:
                is_open = summary.conversation == open_conversation
                options.append(
                    Option(row_text(summary, width, is_open), id=summary.conversation.key)
                )
        ids = [option.id for option in options]
        if ids == self._ids:
            # The same rows (the usual case: counts changed): redraw only what changed.
            for index, (option, signature) in enumerate(
                zip(options, self._signatures, strict=True)
            ):
                if _signature(option) != signature:
                    self.replace_option_prompt_at_index(index, option.prompt)
        else:
            highlighted = self.highlighted
            self.clear_options()
            self.add_options(options)
            self._ids = ids
            if highlighted is not None and highlighted < self.option_count:
                self.highlighted = highlighted
        self._signatures = [_signature(option) for option in options]
        if open_conversation is not None and not self.has_focus:
            with contextlib.suppress(OptionDoesNotExist):
                self.highlighted = self.get_option_index(open_conversation.key)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id and not event.option.id.startswith("section:"):
            self.post_message(self.Chosen(Conversation.parse(event.option.id)))

    def on_resize(self) -> None:
        if self.summaries:
            self.show(self.summaries, self.open_conversation)

    def action_leave(self) -> None:
        self.post_message(self.Left())


def _signature(option: Option) -> object:
    prompt = option.prompt
    return (prompt.plain, tuple(prompt.spans)) if isinstance(prompt, Text) else str(prompt)


def _sorted(summaries: Sequence[ConversationSummary]) -> list[ConversationSummary]:
    groups = sorted(
        (s for s in summaries if s.conversation.kind == "group"), key=lambda s: s.conversation
    )
    dms = sorted(
        (s for s in summaries if s.conversation.kind == "dm"), key=lambda s: s.conversation
    )
    return groups + dms
