"""The line under the message list while new messages wait below the viewport."""

from __future__ import annotations

from textual.widgets import Static


class PendingNotice(Static):
    """Hidden until `show()` is given a count above 0 (see `MessageView.PendingChanged`)."""

    DEFAULT_CSS = """
    PendingNotice {
        height: 1;
        display: none;
        background: $warning 30%;
        text-align: center;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)

    def show(self, count: int) -> None:
        self.display = count > 0
        plural = "s" if count != 1 else ""
        self.update(f"▼ {count} new message{plural} · End to jump to the newest")
