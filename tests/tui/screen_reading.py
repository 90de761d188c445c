"""Reading what the app shows, as plain text, for Pilot tests."""

from __future__ import annotations

from chat_tui.tui.app import ChatApp
from chat_tui.tui.screens.main_screen import MainScreen
from chat_tui.tui.widgets.conversation.message_view import MessageView
from chat_tui.tui.widgets.header import StatusHeader
from chat_tui.tui.widgets.sidebar import ConversationList


def main_screen(app: ChatApp) -> MainScreen:
    assert app.main_screen is not None, "the main screen is not up yet"
    return app.main_screen


def message_lines(app: ChatApp) -> list[str]:
    """The message view's visible lines, as the terminal shows them."""
    view = main_screen(app).query_one(MessageView)
    return [view.render_line(y).text for y in range(view.size.height)]


def message_text(app: ChatApp) -> str:
    return "\n".join(message_lines(app))


def header_text(app: ChatApp) -> str:
    return main_screen(app).query_one(StatusHeader).line.plain


def sidebar_rows(app: ChatApp) -> list[str]:
    sidebar = main_screen(app).query_one(ConversationList)
    rows = []
    for index in range(sidebar.option_count):
        prompt = sidebar.get_option_at_index(index).prompt
        rows.append(str(prompt.plain if hasattr(prompt, "plain") else prompt).strip())
    return rows
