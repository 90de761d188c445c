"""How a message, a status tick, a time or a sender looks. Pure functions over records."""

from __future__ import annotations

import functools
import zlib
from datetime import datetime, tzinfo

from rich.style import Style
from rich.text import Text

from chat_tui.core.records import StoredMessage

# Distinct on dark and light themes; a sender keeps its colour across runs and machines.
SENDER_COLOURS = (
    "#e06c75",
    "#98c379",
    "#e5c07b",
    "#61afef",
    "#c678dd",
    "#56b6c2",
    "#d19a66",
    "#be5046",
    "#7ec699",
    "#f08d49",
)

TIME_STYLE = Style(dim=True)
TICK_STYLES: dict[str, Style] = {
    "queued": Style(color="#e5c07b", italic=True),
    "sent": Style(dim=True),
    "delivered": Style(color="#98c379"),
    "read": Style(color="#61afef", bold=True),
    "failed": Style(color="#e06c75", bold=True),
}


@functools.lru_cache(maxsize=1024)
def sender_colour(sender: str) -> str:
    """A stable colour per sender (crc32, not hash(): that changes between runs)."""
    return SENDER_COLOURS[zlib.crc32(sender.encode()) % len(SENDER_COLOURS)]


def local_time(moment: datetime, zone: tzinfo | None) -> datetime:
    return moment.astimezone(zone)


def clock(moment: datetime, zone: tzinfo | None) -> str:
    return local_time(moment, zone).strftime("%H:%M")


def day_label(moment: datetime, zone: tzinfo | None) -> str:
    return local_time(moment, zone).strftime("%A %d %B %Y")


def status_tick(message: StoredMessage, group: bool) -> Text:
    """queued / sent / delivered / read for an own message, counted in groups."""
    status = message.status
    style = TICK_STYLES.get(status, Style())
    if status == "queued":
        return Text("◷ queued", style)
    if status == "failed":
        return Text(f"✗ not sent{': ' + message.error if message.error else ''}", style)
    total = max(message.recipient_count, 1)
    if group and message.recipient_count > 1:
        if message.read_count:
            return Text(f"✓✓ read {message.read_count}/{total}", TICK_STYLES["read"])
        if message.delivered_count:
            return Text(f"✓✓ {message.delivered_count}/{total}", TICK_STYLES["delivered"])
        return Text("✓ sent", TICK_STYLES["sent"])
    if status == "read":
        return Text("✓✓ read", style)
    if status == "delivered":
        return Text("✓✓", style)
    return Text("✓", TICK_STYLES["sent"])


def status_words(message: StoredMessage) -> str:
    """The status in words, for the details screen."""
    if message.status == "failed":
        return f"not sent: {message.error or 'unknown reason'}"
    total = max(message.recipient_count, 1)
    return (
        f"{message.status} · delivered to {message.delivered_count}/{total}"
        f" · read by {message.read_count}/{total}"
    )
