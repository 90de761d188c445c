"""Reading what the app shows, as plain text, for Pilot tests."""

from __future__ import annotations

from textual.widgets import Static

from chat_tui.tui.app import ChatApp
from chat_tui.tui.screens.main_screen import MainScreen
from chat_tui.tui.widgets.conversation.message_view import MessageView
from chat_tui.tui.widgets.header import StatusHeader
from chat_tui.tui.widgets.sidebar import ConversationList
from tests.conftest import eventually


def main_screen(app: ChatApp) -> MainScreen:
    assert app.main_screen is not None, "the main screen is not up yet"
    return app.main_screen


async def main_screen_ready(app: ChatApp, timeout: float = 10.0) -> MainScreen:
    """Wait until the app has pushed its main screen, and return it."""
    await eventually(lambda: app.main_screen is not None, timeout=timeout, what="the main screen")
    return main_screen(app)


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


def notification_texts(app: ChatApp) -> list[str]:
    """The notifications on screen, each as its title and message (the app must run with
    `run_test(notifications=True)`). Textual keeps no public list of them; its toasts are
    widgets of type `Toast`, a name it keeps public for styling."""
    return [str(toast.render()) for toast in app.screen.query("Toast").results(Static)]
