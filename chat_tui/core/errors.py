"""Errors the client raises to its faces; each message is fit to show a user as is."""

from __future__ import annotations


class ChatError(Exception):
    """A problem the user can act on. The CLI prints it without a traceback."""


class InvalidInputError(ChatError):
    """An invalid ID or text; nothing was stored or sent."""


class UnknownUserError(ChatError):
    pass


class UnknownGroupError(ChatError):
    pass


class NotAMemberError(ChatError):
    pass


class OfflineError(ChatError):
    """The action needs the broker and the broker cannot be reached right now."""


class CacheError(ChatError):
    """The local cache cannot be written; incoming messages stay in the broker."""


class ArchiveUnavailableError(ChatError):
    """No archive answers: none on this deployment, it is down, or the link is."""


class ArchiveRefusedError(ChatError):
    """The archive (or the broker) refused the request; the text says why."""
