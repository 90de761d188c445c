"""The top line: app name, user, connection state, queued count, standby notice, and,
on a broker where everyone shares one login, that senders are not verified."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from chat_tui.config import APP_NAME
from chat_tui.core.status import ClientStatus, ConnectionState

_STATE_STYLES = {
    ConnectionState.ONLINE: Style(color="#98c379", bold=True),
    ConnectionState.CONNECTING: Style(color="#e5c07b"),
    ConnectionState.RECONNECTING: Style(color="#e5c07b", bold=True),
    ConnectionState.OFFLINE: Style(color="#e06c75", bold=True),
}


def describe_status(status: ClientStatus, now: datetime) -> Text:
    """The connection part of the header, e.g. `● online via host:5672` or
    `● reconnecting, next try in 3 s`."""
    text = Text(end="")
    text.append(f"● {status.state.value}", _STATE_STYLES[status.state])
    if status.state is ConnectionState.ONLINE and status.node is not None:
        text.append(f" via {status.node}")
    if status.state is not ConnectionState.ONLINE and status.next_retry_at is not None:
        seconds = max(0, round((status.next_retry_at - now).total_seconds()))
        text.append(f", next try in {seconds} s")
    if status.unavailable_queue and status.state is not ConnectionState.ONLINE:
        text.append(
            f" · RabbitMQ answers, but its queue {status.unavailable_queue} is unavailable",
            Style(color="#e06c75", bold=True),
        )
    if status.refused:
        text.append(f" · {status.refused}", Style(color="#e06c75", bold=True))
    if status.unsent_messages:
        text.append(f" · {status.unsent_messages} queued", Style(color="#e5c07b"))
    if status.standby:
        text.append(
            " · STANDBY: another chat-tui of this user is receiving; this one waits",
            Style(color="#e06c75", bold=True),
        )
    return text


class StatusHeader(Static):
    """Redraws once a second while a retry countdown is running."""

    DEFAULT_CSS = """
    StatusHeader {
        dock: top;
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    def __init__(self, user: str, *, senders_verified: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self.user = user
        self.senders_verified = senders_verified
        """False in open mode: anyone with the shared login can speak in anyone's name."""
        self.status: ClientStatus | None = None
        self.line = Text(end="")
        """What the header shows now."""

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def show_status(self, status: ClientStatus) -> None:
        self.status = status
        self._draw()

    def _tick(self) -> None:
        if self.status is not None and self.status.next_retry_at is not None:
            self._draw()

    def _draw(self) -> None:
        line = Text(end="")
        line.append(APP_NAME, Style(bold=True))
        line.append(f"  {self.user}  ", Style(bold=True, color="#61afef"))
        if self.status is not None:
            line.append_text(describe_status(self.status, datetime.now(UTC)))
        if not self.senders_verified:
            line.append(" · open mode: senders are not verified", Style(color="#e5c07b"))
        self.line = line
        self.update(line)
