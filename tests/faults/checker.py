"""The loss/duplicate checker: accounts for every sent message_id at every recipient.

What was sent is what the senders' own caches hold as outgoing (what their users see as
sent), plus anything a test published by hand. What arrived is read twice over, from
each recipient's SQLite cache and from every line its `tail --json` runs printed.
For every (recipient, message) pair the checker says: delivered, lost, duplicated
(stored twice, or printed twice), or corrupted (content differs); anything a recipient
holds that nobody sent to it is unexpected.

One repeat is not a duplicate but the one window no terminal can close: a `tail` killed
with -9 after it printed a batch and before it recorded that batch as shown prints that
batch again when it restarts (stdout cannot take part in the SQLite transaction). Such
"re-shown" messages are counted apart, and only when they are exactly the last lines the
killed run printed (at most one batch); any other repeat counts as duplicated.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sent:
    message_id: str
    sender_id: str
    conversation: str  # as the sender files it: "group:g" or "dm:<recipient>"
    content: str

    def recipients(self, members: dict[str, list[str]]) -> list[str]:
        kind, name = self.conversation.split(":", 1)
        if kind == "group":
            return [m for m in members[name] if m != self.sender_id]
        return [name]

    def conversation_at(self, recipient: str) -> str:
        """How the recipient files it: DMs are filed under the other party."""
        kind = self.conversation.split(":", 1)[0]
        return self.conversation if kind == "group" else f"dm:{self.sender_id}"


@dataclass(frozen=True)
class Seen:
    """One message as a recipient stored or printed it."""

    message_id: str
    sender_id: str
    conversation: str
    content: str


@dataclass
class ScenarioResult:
    scenario: str
    sent: int = 0
    expected: int = 0
    delivered: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reshown: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.corrupted or self.unexpected)

    def summary(self) -> str:
        return (
            f"{self.scenario}: sent {self.sent}, expected {self.expected}, delivered "
            f"{self.delivered}, lost {len(self.lost)}, duplicated {len(self.duplicated)}, "
            f"corrupted {len(self.corrupted)}, unexpected {len(self.unexpected)}, "
            f"re-shown after kill -9 {len(self.reshown)}"
        )

    def details(self, limit: int = 10) -> str:
        lines = [self.summary()]
        for label, items in (
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("corrupted", self.corrupted),
            ("unexpected", self.unexpected),
            ("re-shown after kill -9", self.reshown),
        ):
            lines += [f"  {label}: {item}" for item in items[:limit]]
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more {label}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


RESULTS: list[ScenarioResult] = []
"""Every scenario's result, for the table at the end of the session."""


def read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def outgoing_of(database: Path) -> list[Sent]:
    """What a user's cache holds as sent by them (anything but `failed`)."""
    if not database.exists():
        return []
    with read_only(database) as conn:
        rows = conn.execute(
            "SELECT message_id, sender_id, conversation_key, content FROM messages "
            "WHERE outgoing = 1 AND status != 'failed'"
        ).fetchall()
    return [Sent(r[0], r[1], r[2], r[3]) for r in rows]


def outbox_size_of(database: Path) -> int:
    """Chat messages still waiting in a user's outbox."""
    with read_only(database) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox WHERE kind = 'message'").fetchone()[0])


def incoming_of(database: Path) -> list[Seen]:
    if not database.exists():
        return []
    with read_only(database) as conn:
        rows = conn.execute(
            "SELECT message_id, sender_id, conversation_key, content FROM messages "
            "WHERE outgoing = 0 ORDER BY seq"
        ).fetchall()
    return [Seen(r[0], r[1], r[2], r[3]) for r in rows]


def printed_by(output: Path) -> list[Seen]:
    """The messages one `tail --json` run printed. A line torn by kill -9 is not printed."""
    seen: list[Seen] = []
    if not output.exists():
        return seen
    for line in output.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "message_id" in obj:
            seen.append(
                Seen(obj["message_id"], obj["sender_id"], obj["conversation"], obj["content"])
            )
    return seen


BATCH_SIZE = 100
"""The receive pipeline's largest batch: what one sink.show() prints at most."""


@dataclass
class Recipient:
    """What one recipient holds: its cache, and the output of each of its tail runs."""

    user: str
    cache: list[Seen]
    runs: list[list[Seen]]
    killed: list[bool] = field(default_factory=list)
    """Per run: whether it ended by kill -9."""


def crash_window(recipient: Recipient, later_prints: dict[int, set[str]]) -> set[tuple[int, str]]:
    """The (run, message_id) repeats that are the kill -9 window: for each killed run,
    the messages printed again later must be exactly its last lines, at most a batch."""
    allowed: set[tuple[int, str]] = set()
    for number, run in enumerate(recipient.runs):
        if number >= len(recipient.killed) or not recipient.killed[number]:
            continue
        again = {s.message_id for s in run} & later_prints.get(number, set())
        if not again or len(again) > BATCH_SIZE:
            continue
        tail_ids = {s.message_id for s in run[-len(again) :]}
        if tail_ids == again:
            allowed |= {(number, message_id) for message_id in again}
    return allowed


def check(
    scenario: str,
    sent: list[Sent],
    members: dict[str, list[str]],
    recipients: list[Recipient],
) -> ScenarioResult:
    """Account for every sent message at every recipient."""
    result = ScenarioResult(scenario, sent=len(sent))
    by_id = {m.message_id: m for m in sent}
    expected_at: dict[str, dict[str, Sent]] = {}
    for message in sent:
        for user in message.recipients(members):
            expected_at.setdefault(user, {})[message.message_id] = message
    for recipient in recipients:
        expected = expected_at.get(recipient.user, {})
        result.expected += len(expected)
        stored_ids = Counter(s.message_id for s in recipient.cache)
        # A message re-sent under a fresh ID would be stored twice with one content.
        stored_contents = Counter((s.sender_id, s.content) for s in recipient.cache)
        printed_total: Counter[str] = Counter()
        runs_printing: Counter[str] = Counter()
        for number, run in enumerate(recipient.runs):
            printed_in_run = Counter(s.message_id for s in run)
            printed_total.update(printed_in_run)
            runs_printing.update(printed_in_run.keys())
            for message_id, count in printed_in_run.items():
                if count > 1:
                    result.duplicated.append(
                        f"{recipient.user}: {message_id} printed {count}x by tail run {number}"
                    )
        run_ids = [{s.message_id for s in run} for run in recipient.runs]
        later_prints = {
            n: set().union(*run_ids[n + 1 :]) if n + 1 < len(run_ids) else set()
            for n in range(len(run_ids))
        }
        window = crash_window(recipient, later_prints)
        for seen in [*recipient.cache, *(s for run in recipient.runs for s in run)]:
            original = expected.get(seen.message_id)
            if original is None:
                origin = "never sent" if seen.message_id not in by_id else "not addressed here"
                result.unexpected.append(f"{recipient.user}: {seen.message_id} ({origin})")
                continue
            if (seen.sender_id, seen.content, seen.conversation) != (
                original.sender_id,
                original.content,
                original.conversation_at(recipient.user),
            ):
                result.corrupted.append(
                    f"{recipient.user}: {seen.message_id} arrived as {seen.content!r} from "
                    f"{seen.sender_id} in {seen.conversation}; sent {original.content!r}"
                )
        for message_id, original in expected.items():
            stored = stored_ids[message_id]
            printed = printed_total[message_id]
            if stored == 0 or printed == 0:
                result.lost.append(
                    f"{recipient.user}: {message_id} {original.content!r} "
                    f"(stored {stored}x, printed {printed}x)"
                )
                continue
            result.delivered += 1
            twice = stored_contents[(original.sender_id, original.content)]
            if twice > 1:
                result.duplicated.append(
                    f"{recipient.user}: {original.content!r} stored {twice}x under several IDs"
                )
            if runs_printing[message_id] > 1:
                printers = [n for n, run in enumerate(recipient.runs) if message_id in run_ids[n]]
                repeats = printers[:-1]  # every printing run but the last printed it again later
                if all((n, message_id) in window for n in repeats):
                    result.reshown.append(f"{recipient.user}: {message_id}")
                else:
                    result.duplicated.append(
                        f"{recipient.user}: {message_id} printed again by "
                        f"{runs_printing[message_id] - 1} later tail run(s)"
                    )
    result.duplicated = sorted(set(result.duplicated))
    result.unexpected = sorted(set(result.unexpected))
    result.corrupted = sorted(set(result.corrupted))
    return result


def table(results: list[ScenarioResult]) -> str:
    """The report: one row per scenario."""
    header = (
        "scenario",
        "sent",
        "expected",
        "delivered",
        "lost",
        "dup",
        "corrupt",
        "unexp",
        "reshown*",
    )
    rows = [
        (
            r.scenario,
            str(r.sent),
            str(r.expected),
            str(r.delivered),
            str(len(r.lost)),
            str(len(r.duplicated)),
            str(len(r.corrupted)),
            str(len(r.unexpected)),
            str(len(r.reshown)),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    out = [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    totals = (
        "total",
        str(sum(r.sent for r in results)),
        str(sum(r.expected for r in results)),
        str(sum(r.delivered for r in results)),
        str(sum(len(r.lost) for r in results)),
        str(sum(len(r.duplicated) for r in results)),
        str(sum(len(r.corrupted) for r in results)),
        str(sum(len(r.unexpected) for r in results)),
        str(sum(len(r.reshown) for r in results)),
    )
    out += ["  ".join("-" * w for w in widths), line(totals)]
    out.append(
        "* reshown: printed again by a restarted tail because kill -9 fell between printing "
        "the batch and recording it as shown (the killed run's last lines only)"
    )
    return "\n".join(out)
