"""Ctrl+F or /search TEXT: messages of every conversation that match, best first.

The screen knows the search only as a function from text to a `SearchOutcome` (the
client's `search`: the local cache and the archive merged), and returns the hit the
user chose; the main screen opens it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import tzinfo
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from chat_tui.core.errors import ChatError
from chat_tui.core.search import SearchHit, SearchOutcome
from chat_tui.tui.formatting import local_time, sender_colour
from chat_tui.tui.literal import literal_text
from chat_tui.tui.screens.switcher_screen import move_highlight

Search = Callable[[str], Awaitable[SearchOutcome]]

TYPING_PAUSE = 0.3
"""Seconds without a keystroke before the text typed so far is searched."""
MATCH_STYLE = Style(bold=True, reverse=True)
ARCHIVE_MARKER = "archive"
"""Shown on a result that is not in this device's cache yet: opening it fetches it."""
_WORD = re.compile(r"\w+")


def query_words(query: str) -> list[str]:
    """The words of a query, as the search matches them: quotes and operators are text
    to the search, but only the words in it are highlighted."""
    return _WORD.findall(query)


def hit_text(hit: SearchHit, query: str, zone: tzinfo | None) -> Text:
    """One result: where and when on the first row, the snippet with the match under it."""
    text = Text(end="")
    text.append(str(hit.conversation), Style(bold=True))
    text.append("  ")
    text.append(hit.sender_id, Style(color=sender_colour(hit.sender_id), bold=True))
    text.append("  " + local_time(hit.sent_at, zone).strftime("%d %b %Y %H:%M"), Style(dim=True))
    if not hit.in_cache:
        text.append(f"  [{ARCHIVE_MARKER}]", Style(color="#56b6c2", italic=True))
    text.append("\n  ")
    snippet = literal_text(" ".join(hit.snippet.split()))
    snippet.highlight_words(query_words(query), MATCH_STYLE, case_sensitive=False)
    text.append_text(snippet)
    return text


def outcome_summary(outcome: SearchOutcome) -> str:
    """The line under the query: how many results, and from where."""
    count = len(outcome.hits)
    found = f"{count} result{'s' if count != 1 else ''}" if count else "No messages match"
    match outcome.archive:
        case "answered":
            return f"{found}, from this device and the archive."
        case "refused":
            return f"{found} on this device; the archive refused: {outcome.archive_detail}"
        case "unavailable":
            return f"{found} on this device; the archive did not answer."
        case _:
            return f"{found} on this device."


class SearchScreen(ModalScreen[SearchHit | None]):
    """Type to search; Up/Down choose a result, Enter opens it, Escape closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Close search"),
        Binding("down", "move(1)", "Next result", show=False),
        Binding("up", "move(-1)", "Previous result", show=False),
    ]

    DEFAULT_CSS = """
    SearchScreen { align: center top; }
    SearchScreen > Vertical {
        margin-top: 2;
        width: 90%;
        max-width: 100;
        height: auto;
        max-height: 85%;
        border: round $accent;
        background: $surface;
    }
    SearchScreen #search-status { height: 1; padding: 0 1; color: $text-muted; }
    SearchScreen OptionList { height: auto; max-height: 24; border: none; }
    """

    def __init__(self, search: Search, query: str = "", zone: tzinfo | None = None) -> None:
        super().__init__()
        self._search = search
        self._initial_query = query
        self._zone = zone
        self.hits: list[SearchHit] = []
        self.searched: str | None = None
        """The query the results are for (None before the first answer)."""
        self.status = "Type words to search for."
        """The line under the query, as shown."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(
                self._initial_query, placeholder="Search every conversation…", id="search-query"
            )
            yield Static(self.status, id="search-status", markup=False)
            yield OptionList(id="search-results")

    def on_mount(self) -> None:
        if self._initial_query.strip():
            self._run_search(self._initial_query, pause=0)

    @on(Input.Changed)
    def _query_changed(self, event: Input.Changed) -> None:
        if event.value.strip():
            self._run_search(event.value, pause=TYPING_PAUSE)

    @on(Input.Submitted)
    def _query_submitted(self, event: Input.Submitted) -> None:
        if event.value == self.searched:
            self._open_highlighted()
        elif event.value.strip():
            self._run_search(event.value, pause=0)

    @on(OptionList.OptionSelected)
    def _option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.hits[event.option_index])

    @work(exclusive=True, group="search")
    async def _run_search(self, query: str, pause: float) -> None:
        if pause:
            await asyncio.sleep(pause)  # a newer keystroke cancels this worker meanwhile
        self._show_status("Searching…")
        try:
            outcome = await self._search(query)
        except ChatError as exc:
            self._show_status(str(exc))
            return
        self._show(query, outcome.hits)
        self._show_status(outcome_summary(outcome))

    def _show(self, query: str, hits: Sequence[SearchHit]) -> None:
        self.searched = query
        self.hits = list(hits)
        results = self.query_one(OptionList)
        results.clear_options()
        results.add_options(Option(hit_text(hit, query, self._zone)) for hit in self.hits)
        if self.hits:
            results.highlighted = 0

    def _show_status(self, text: str) -> None:
        self.status = text
        self.query_one("#search-status", Static).update(text)

    def _open_highlighted(self) -> None:
        highlighted = self.query_one(OptionList).highlighted
        if highlighted is not None and highlighted < len(self.hits):
            self.dismiss(self.hits[highlighted])

    def action_move(self, step: int) -> None:
        move_highlight(self.query_one(OptionList), step)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
