"""Ctrl+G: jump to any conversation by typing part of its name (fuzzy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from chat_tui.protocol.conversations import Conversation


def switcher_candidates(
    listed: Sequence[Conversation], users: Sequence[str], me: str
) -> list[Conversation]:
    """The conversations listed, then a DM with each other user not among them."""
    candidates = list(listed)
    for user in users:
        conversation = Conversation.dm(user)
        if user != me and conversation not in candidates:
            candidates.append(conversation)
    return candidates


def ranked(candidates: Sequence[Conversation], query: str) -> list[Conversation]:
    """Candidates that match `query` fuzzily, best first (all of them for no query)."""
    if not query:
        return list(candidates)
    matcher = Matcher(query)
    scored = [(matcher.match(str(c)), c) for c in candidates]
    return [c for score, c in sorted(scored, key=lambda pair: -pair[0]) if score > 0]


def move_highlight(results: OptionList, step: int) -> None:
    """Up/Down typed in the query box move the highlight in the list under it."""
    if results.option_count:
        current = results.highlighted or 0
        results.highlighted = max(0, min(results.option_count - 1, current + step))


class SwitcherScreen(ModalScreen[Conversation | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Close"),
        Binding("down", "move(1)", show=False),
        Binding("up", "move(-1)", show=False),
    ]

    DEFAULT_CSS = """
    SwitcherScreen { align: center top; }
    SwitcherScreen > Vertical {
        margin-top: 2;
        width: 60;
        height: auto;
        max-height: 80%;
        border: round $accent;
        background: $surface;
    }
    SwitcherScreen OptionList { height: auto; max-height: 16; border: none; }
    """

    def __init__(self, candidates: Sequence[Conversation]) -> None:
        super().__init__()
        self.candidates = list(candidates)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(placeholder="Go to conversation…", id="switcher-query")
            yield OptionList(id="switcher-results")

    def on_mount(self) -> None:
        self._fill("")

    def _fill(self, query: str) -> None:
        results = self.query_one(OptionList)
        results.clear_options()
        results.add_options(Option(Text(str(c)), id=c.key) for c in ranked(self.candidates, query))
        if results.option_count:
            results.highlighted = 0

    @on(Input.Changed)
    def _query_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted)
    def _query_submitted(self) -> None:
        results = self.query_one(OptionList)
        if results.highlighted is not None:
            option = results.get_option_at_index(results.highlighted)
            self.dismiss(Conversation.parse(option.id or ""))

    @on(OptionList.OptionSelected)
    def _option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Conversation.parse(event.option.id or ""))

    def action_move(self, step: int) -> None:
        move_highlight(self.query_one(OptionList), step)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
