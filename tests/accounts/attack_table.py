"""The attacks of issue 10 as a table: each test attempts its attacks inside
`AttackLog.attempt(...)`, which records a row that holds only if every assertion in the
block passed. Rows travel in the test report's `user_properties`, so that the session's
summary (tests/accounts/conftest.py) prints them wherever the test ran."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import pytest

PROPERTY = "attack"


@dataclass(frozen=True)
class AttackRow:
    number: str
    """`4b`: the attack's number in issue 10's list, and which variant of it."""
    attack: str
    stopped_by: str
    """The broker's permission, or the receiver's check, that stops it."""
    verdict: str
    """What the test asserted: the broker's exact refusal, or the receiver's verdict."""
    held: bool
    failure: str = ""
    """When the attack was not stopped: the first line of what failed."""


class AttackLog:
    """Where one test records the attacks it attempted."""

    def __init__(self, item: pytest.Item) -> None:
        self._item = item

    @contextmanager
    def attempt(self, number: str, attack: str, stopped_by: str, verdict: str) -> Iterator[None]:
        """Attempt an attack and assert it was stopped inside the block: the row holds
        if the block ends normally, and reads FAILED (and the test fails) if not."""
        try:
            yield
        except Exception as exc:
            first_line = next(iter(str(exc).strip().splitlines()), "")
            failure = f"{type(exc).__name__}: {first_line}"[:120]
            self._record(AttackRow(number, attack, stopped_by, verdict, False, failure))
            raise
        self._record(AttackRow(number, attack, stopped_by, verdict, True))

    def _record(self, row: AttackRow) -> None:
        self._item.user_properties.append((PROPERTY, asdict(row)))


def rows_of(report: pytest.TestReport) -> list[AttackRow]:
    return [
        AttackRow(**value)
        for name, value in report.user_properties
        if name == PROPERTY and isinstance(value, dict)
    ]


def _sort_key(row: AttackRow) -> tuple[int, str]:
    # `4` (what the victim sees after 4a-4e) comes after its variants.
    digits = "".join(c for c in row.number if c.isdigit())
    variant = row.number[len(digits) :] or "~"
    return (int(digits) if digits else 99, variant)


def table(rows: list[AttackRow]) -> str:
    """The rows in the order of issue 10's list, as aligned columns."""
    header = ("#", "attack", "what stopped it", "verdict")
    lines = [
        (
            row.number,
            row.attack,
            row.stopped_by,
            row.verdict if row.held else f"FAILED: {row.failure}",
        )
        for row in sorted(rows, key=_sort_key)
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    rule = "-+-".join("-" * width for width in widths)

    def joined(cells: tuple[str, str, str, str]) -> str:
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return " | ".join(padded).rstrip()

    held = sum(row.held for row in rows)
    summary = f"{held} of {len(rows)} attacks stopped"
    return "\n".join([joined(header), rule, *(joined(line) for line in lines), summary])
