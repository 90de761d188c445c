"""Results of a run: one row per metric, printed as a table and written as JSON."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Comparison = Literal["<=", "<", ">=", ">"]
_COMPARE: dict[Comparison, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Goal:
    """A target for either the ratio to the baseline or the value itself."""

    on: Literal["ratio", "value"]
    comparison: Comparison
    threshold: float
    unit: str = ""

    def met(self, value: float, ratio: float | None) -> bool | None:
        subject = ratio if self.on == "ratio" else value
        if subject is None:
            return None
        return _COMPARE[self.comparison](subject, self.threshold)

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.on} {self.comparison} {self.threshold:g}{unit}"


@dataclass(frozen=True)
class Result:
    """One metric: chat-tui's value, plain aio-pika's, and how they compare.

    `ratio` is always chat-tui / baseline: for a time, lower is better; for a rate,
    higher is. The goal says which way it must go."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    goal: Goal | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.value, self.ratio)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "baseline": None if self.baseline is None else round(self.baseline, 4),
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "unit": self.unit,
            "goal": None if self.goal is None else str(self.goal),
            "met": self.met,
            "note": self.note,
        }


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def _met(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def table(results: Sequence[Result]) -> str:
    """A plain-text table with the columns metric, chat-tui, baseline, ratio, goal, met."""
    header = ("metric", "chat-tui", "baseline", "ratio", "goal", "met")
    rows = [header] + [
        (
            r.name,
            _number(r.value, r.unit),
            _number(r.baseline, r.unit),
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            "-" if r.goal is None else str(r.goal),
            _met(r.met),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.name}: {r.note}" for r in results if r.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def write_json(results: Sequence[Result], path: Path) -> None:
    path.write_text(json.dumps([r.as_json() for r in results], indent=2) + "\n")
