"""Start the Textual app; kept apart so the headless commands never import Textual."""

from __future__ import annotations

from chat_tui.config import Settings


def launch(settings: Settings, demo_bots: int = 0) -> int:
    from chat_tui.tui.app import ChatApp

    app = ChatApp(settings, demo_bots=demo_bots)
    app.run()
    return app.return_code or 0
