"""The headless command line, run as real subprocesses: sending, tailing, groups, history,
surviving a dead broker and a SIGKILL, and clear errors without tracebacks."""

from __future__ import annotations

import array
import asyncio
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import termios
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

from chat_tui.core.client import ChatClient
from chat_tui.core.receiver import BATCH_SIZE
from chat_tui.protocol.conversations import Conversation
from tests.conftest import Deployment, closed_port_url, eventually
from tests.test_wire_format import queue_depth


async def run(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    """`chat-tui ARGS` in a subprocess, without blocking the event loop of the test."""
    return await asyncio.to_thread(deployment.cli, *args)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_send_tail_and_history_between_two_users(deployment: Deployment) -> None:
    ok(await run(deployment, "users", "--user", "bob"))
    sent = ok(await run(deployment, "send", "--user", "alice", "--dm", "bob", "hi bob"))
    assert sent.stdout.startswith("sent ")
    message_id = sent.stdout.split()[1]

    tailed = ok(await run(deployment, "tail", "--user", "bob", "--json", "--count", "1"))
    (line,) = json_lines(tailed.stdout)
    assert line["message_id"] == message_id
    assert (line["sender_id"], line["content"], line["conversation"]) == (
        "alice",
        "hi bob",
        "dm:alice",
    )

    history = ok(await run(deployment, "history", "--user", "alice", "--dm", "bob", "--json"))
    (own,) = json_lines(history.stdout)
    assert own["message_id"] == message_id
    assert own["status"] in {"sent", "delivered", "read"}
    text = ok(await run(deployment, "history", "--user", "bob", "--dm", "alice"))
    assert "@alice  alice: hi bob" in text.stdout
    users = ok(await run(deployment, "users", "--user", "bob"))
    assert users.stdout.split() == ["alice", "bob"]


async def test_group_commands_create_join_list_and_leave(deployment: Deployment) -> None:
    assert ok(await run(deployment, "create", "--user", "alice", "team")).stdout == "created team\n"
    assert ok(await run(deployment, "join", "--user", "bob", "#team")).stdout == "joined team\n"
    assert ok(await run(deployment, "groups", "--user", "bob")).stdout.split() == ["team"]
    members = ok(await run(deployment, "members", "--user", "bob", "team"))
    assert members.stdout.split() == ["alice", "bob"]
    ok(await run(deployment, "send", "--user", "alice", "--group", "team", "hello team"))
    tailed = ok(await run(deployment, "tail", "--user", "bob", "--json", "--count", "1"))
    assert [m["content"] for m in json_lines(tailed.stdout)] == ["hello team"]
    assert json_lines(tailed.stdout)[0]["group_id"] == "team"
    assert ok(await run(deployment, "leave", "--user", "bob", "team")).stdout == "left team\n"
    assert ok(await run(deployment, "groups", "--user", "bob")).stdout == ""
    assert ok(await run(deployment, "groups", "--user", "bob", "--all")).stdout.split() == ["team"]
    assert ok(await run(deployment, "members", "--user", "bob", "team")).stdout.split() == ["alice"]


async def test_send_while_broker_is_down_is_queued_and_delivered_once_at_next_run(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    ok(await run(deployment, "users", "--user", "bob"))
    down = closed_port_url()
    queued = ok(
        await run(
            deployment, "send", "--user", "alice", "--dm", "bob", "while down", "--amqp-url", down
        )
    )
    assert "queued" in queued.stdout
    assert str(URL(down).port) in queued.stdout
    inbox = deployment.names.inbox_queue("bob")
    assert await queue_depth(raw, inbox) == 0

    ok(await run(deployment, "groups", "--user", "alice"))  # any command sends it
    assert await queue_depth(raw, inbox) == 1
    ok(await run(deployment, "groups", "--user", "alice"))  # and only once
    assert await queue_depth(raw, inbox) == 1

    mine = json_lines(
        ok(await run(deployment, "history", "--user", "alice", "--dm", "bob", "--json")).stdout
    )
    assert [(m["content"], m["status"] != "queued") for m in mine] == [("while down", True)]
    tailed = ok(await run(deployment, "tail", "--user", "bob", "--json", "--idle", "1.5"))
    received = json_lines(tailed.stdout)
    assert [(m["message_id"], m["content"]) for m in received] == [
        (mine[0]["message_id"], "while down")
    ]
    theirs = json_lines(
        ok(await run(deployment, "history", "--user", "bob", "--dm", "alice", "--json")).stdout
    )
    assert [m["message_id"] for m in theirs] == [mine[0]["message_id"]]


def stored_messages(database: Path) -> int:
    """Rows in a cache that another process is writing (0 before it exists)."""
    if not database.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as conn:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # created but not migrated yet


def pipe_fill(read_end: int) -> int:
    """Bytes waiting in a pipe that nobody reads."""
    waiting = array.array("i", [0])
    fcntl.ioctl(read_end, termios.FIONREAD, waiting)
    return waiting[0]


async def wait_until_blocked(read_end: int, timeout: float = 30.0) -> None:
    """Wait until the pipe is full: its writer is then blocked in the middle of a write."""
    # A blocked writer leaves at most a page free; one buffered chunk of slack.
    full = fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) - 8192
    await eventually(lambda: pipe_fill(read_end) >= full, timeout=timeout, what="a full pipe")


async def test_receiver_killed_before_acking_loses_nothing_and_stores_no_duplicate(
    deployment: Deployment, raw: AbstractRobustConnection
) -> None:
    total = 2 * BATCH_SIZE  # more than one batch: some stored, some not, at the kill
    ok(await run(deployment, "users", "--user", "bob"))
    alice = await deployment.client("alice")
    await eventually(lambda: _knows(alice, "bob"), what="alice to know bob")
    # About 1.3 KB per printed line: the 64 KiB pipe holds far fewer than a batch.
    texts = [f"{i:04d} " + "x" * 1000 for i in range(total)]
    sent = [await alice.send(Conversation.dm("bob"), text) for text in texts]
    assert await alice.flush(20)
    inbox = deployment.names.inbox_queue("bob")
    assert await queue_depth(raw, inbox) == total

    # A real receiver whose output nobody reads: it stores a batch, then blocks while
    # printing it into the full pipe, so it cannot ack. That is where it gets killed.
    read_end, write_end = os.pipe()
    receiver = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chat_tui",
        "tail",
        "--json",
        "--user",
        "bob",
        env=deployment.cli_env(),
        stdout=write_end,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    database = deployment.settings("bob").database_path
    try:
        await wait_until_blocked(read_end)
        stored = stored_messages(database)
        assert receiver.returncode is None, "the receiver exited instead of blocking"
    finally:
        receiver.send_signal(signal.SIGKILL)
        await receiver.wait()
        with os.fdopen(read_end, "rb") as pipe:
            printed_before = pipe.read()
    assert receiver.returncode == -signal.SIGKILL
    assert 0 < stored < total
    # The broker gives back what was never acked, including messages already in the cache.
    await eventually(
        lambda: _broker_still_holds_some_of_the_stored(raw, inbox, stored, total),
        what="the unacked messages to be requeued",
    )

    complete_lines = [line for line in printed_before.decode().split("\n")[:-1] if line]
    seen_before = {json.loads(line)["message_id"] for line in complete_lines}
    tailed = ok(await run(deployment, "tail", "--user", "bob", "--json", "--idle", "2"))
    seen_after = [m["message_id"] for m in json_lines(tailed.stdout)]
    assert len(seen_after) == len(set(seen_after)), "the second run printed a message twice"
    assert seen_before | set(seen_after) == {m.message_id for m in sent}

    history = json_lines(
        ok(
            await run(
                deployment, "history", "--user", "bob", "--dm", "alice", "--json", "--limit", "1000"
            )
        ).stdout
    )
    assert [m["message_id"] for m in history] == [m.message_id for m in sent]
    assert [m["content"] for m in history] == texts
    assert await queue_depth(raw, inbox) == 0


async def _knows(client: ChatClient, user: str) -> bool:
    return user in await client.store.users()


async def _broker_still_holds_some_of_the_stored(
    connection: AbstractRobustConnection, queue: str, stored: int, total: int
) -> bool:
    # Acked messages left the queue; more than `total - stored` left means some of the
    # stored ones were never acked.
    return await queue_depth(connection, queue) + stored > total


def _no_traceback(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, f"exit {result.returncode}: {result.stdout} {result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout
    # Progress lines ("waiting for RabbitMQ...") may come first; the error ends the output.
    assert result.stderr.strip().splitlines()[-1].startswith("chat-tui: error: "), result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["groups", "--user", "Bad.User"], "invalid user ID 'Bad.User'"),
        (["--user=-bob", "users"], "invalid user ID '-bob'"),
        (["send", "--user", "alice", "--group", "dev.ops", "hi"], "invalid group ID 'dev.ops'"),
        (["send", "--user", "alice", "--dm", "Bob!", "hi"], "invalid user ID 'Bob!'"),
        (["join", "--user", "alice", "a" * 33], "invalid group ID"),
        (["send", "--user", "alice", "--dm", "alice", "  "], "content is empty"),
        (["send", "--user", "alice", "--dm", "alice", "x" * 16385], "16384 bytes"),
    ],
    ids=[
        "invalid-user",
        "user-starting-with-dash",
        "group-with-dot",
        "dm-to-invalid-user",
        "group-too-long",
        "empty-text",
        "oversized-text",
    ],
)
async def test_invalid_input_is_a_clear_error(
    deployment: Deployment, args: list[str], expected: str
) -> None:
    assert expected in _no_traceback(await run(deployment, *args))


@pytest.mark.parametrize(
    "command",
    [["tail"], ["create", "team"], ["send", "--wait", "--timeout", "1", "--dm", "bob", "hi"]],
)
async def test_unreachable_broker_is_named_with_how_to_start_one(
    deployment: Deployment, command: list[str]
) -> None:
    down = closed_port_url()
    error = _no_traceback(await run(deployment, *command, "--user", "alice", "--amqp-url", down))
    assert f"127.0.0.1:{URL(down).port}" in error
    assert "rabbitmq-server" in error or "make broker" in error


async def test_refused_authentication_is_a_clear_error(deployment: Deployment) -> None:
    wrong = str(URL(deployment.amqp_url).with_user("guest").with_password("not-the-password"))
    error = _no_traceback(await run(deployment, "groups", "--user", "alice", "--amqp-url", wrong))
    assert "refused" in error
    assert "not-the-password" not in error


async def test_unknown_user_and_unknown_group_are_clear_errors(deployment: Deployment) -> None:
    ok(await run(deployment, "users", "--user", "alice"))
    cases = [
        (["send", "--dm", "ghost", "hello?"], "unknown user 'ghost'"),
        (["send", "--group", "nope", "hello?"], "unknown group 'nope'"),
        (["join", "nope"], "unknown group 'nope'"),
        (["members", "nope"], "unknown group 'nope'"),
        (["leave", "nope"], "unknown group 'nope'"),
    ]
    # One user per case, so that the commands can run side by side.
    results = await asyncio.gather(
        *(run(deployment, *args, "--user", f"user{i}") for i, (args, _) in enumerate(cases))
    )
    for (args, expected), result in zip(cases, results, strict=True):
        assert expected in _no_traceback(result), args


async def test_a_cache_from_a_newer_chat_tui_is_a_clear_error(deployment: Deployment) -> None:
    database = deployment.settings("alice").database_path
    database.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA user_version = 99")
    error = _no_traceback(await run(deployment, "history", "--user", "alice", "--dm", "bob"))
    assert "newer" in error
