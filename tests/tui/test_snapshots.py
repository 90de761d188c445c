"""Pictures of the main screen over a fixed cache, with no broker: the same on every run."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from textual.pilot import Pilot

from chat_tui.config import Settings
from chat_tui.tui.app import ChatApp
from tests.tui.screen_reading import main_screen


def _app(settings: Settings) -> ChatApp:
    return ChatApp(settings, connect=False, zone=UTC, open_conversation="group:lobby")


async def _steady_cursor(pilot: Pilot[None]) -> None:
    # A blinking cursor would make the picture depend on timing.
    app = pilot.app
    assert isinstance(app, ChatApp)
    main_screen(app).composer.cursor_blink = False
    await pilot.pause()


def test_main_screen_at_80x24(snap_compare: Any, sample_settings: Settings) -> None:
    assert snap_compare(_app(sample_settings), terminal_size=(80, 24), run_before=_steady_cursor)


def test_main_screen_at_120x40(snap_compare: Any, sample_settings: Settings) -> None:
    assert snap_compare(_app(sample_settings), terminal_size=(120, 40), run_before=_steady_cursor)
