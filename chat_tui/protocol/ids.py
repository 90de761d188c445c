"""The ID rules: user and group IDs are safe to put inside routing keys."""

from __future__ import annotations

import re
import uuid

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class InvalidIdError(ValueError):
    """A user or group ID that does not match ID_PATTERN."""


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def validate_id(value: str, what: str = "ID") -> str:
    """Return `value` unchanged, or raise InvalidIdError naming the rule."""
    if not isinstance(value, str) or not is_valid_id(value):
        raise InvalidIdError(
            f"invalid {what} {value!r}: use 1-32 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit"
        )
    return value


def new_message_id() -> str:
    return str(uuid.uuid4())
