"""Transitional: `Store` lives in store.py; import it from `chat_tui.store`. Delete this
module once core/outbox.py, core/directory.py and tui/widgets/conversation/message_view.py
import from there."""

from chat_tui.store.records import SendRefused
from chat_tui.store.store import Store

__all__ = ["SendRefused", "Store"]
