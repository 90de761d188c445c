"""What a face shows of the client's connection: the core's own words for it.

The transport reports its link (`LinkStatus`); the core adds what only it knows (the
consumers are set up, another instance holds the inbox, what still waits to go out)
and hands the faces a `ClientStatus`. Faces never see the transport's types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


@dataclass(frozen=True)
class ClientStatus:
    """What the header shows: the link, the next retry, and what still waits to go out."""

    state: ConnectionState
    next_retry_at: datetime | None = None
    error: str | None = None
    unsent_messages: int = 0
    """Own chat messages not yet confirmed by the broker (receipts are not counted)."""
    standby: bool = False
    """Another instance of this user holds the inbox; this one only waits."""
