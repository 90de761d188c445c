"""Scenarios 4 and 5: clients are killed with -9. A receiver killed in the middle of a
batch loses nothing and shows nothing twice; a sender killed after Enter, before the
broker's confirm, delivers the message once it runs again."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.faults import checker
from tests.faults.fault_proxy import FaultProxy
from tests.faults.world import (
    GROUP,
    USERS,
    ChatWorld,
    queue_state,
    start_traffic,
    wait_drained,
    wait_for,
    wait_sending,
)

pytestmark = pytest.mark.timeout(300)

KILLS = 4


def _printed_lines(path: object) -> int:
    try:
        with open(path, "rb") as out:  # type: ignore[call-overload]
            return out.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _backlog_without_consumer(world: ChatWorld, queue: str) -> bool:
    state = queue_state(world.node.port, queue)
    return state.messages > 0 and state.consumers == 0


def test_receiver_killed_mid_batch_again_and_again_loses_and_repeats_nothing(
    world: ChatWorld,
) -> None:
    world.make_group(GROUP, USERS)
    victim = "bob"
    for user in USERS:
        world.tail(user)
    for run in world.runs:
        if run.user == victim and run.role == "tail":
            run.kill()  # bob goes away; a backlog builds up in his inbox
    inbox = f"{world.namespace}.inbox.{victim}"
    # Slow enough that all KILLS fit in the traffic: each restart first waits for the
    # broker to let the killed tail go.
    senders = start_traffic(world, USERS, 40, 0.25)
    wait_sending(senders)
    kills = 0
    while kills < KILLS and any(run.alive for run in senders):
        # The broker has let the killed tail go: what it left unacked is back in the
        # inbox, and world.tail() counts the next tail's consumer from zero.
        wait_for(
            lambda: _backlog_without_consumer(world, inbox),
            30,
            "a backlog in bob's inbox, and no consumer left on it",
        )
        # Start bob's tail on the backlog and kill it as soon as it printed anything:
        # it is then in the middle of its batches (stored, printed, not all acked).
        run = world.tail(victim)
        wait_for(
            lambda run=run: _printed_lines(run.stdout) > 0 or not run.alive,  # type: ignore[misc]
            20,
            "bob's tail to print something",
            0.002,
        )
        assert run.alive, f"bob's tail exited by itself:\n{run.errors()[-3000:]}"
        run.kill()
        assert _printed_lines(run.stdout) > 0, f"kill {kills}: bob's tail printed nothing"
        kills += 1
    assert kills >= 3, f"the traffic ended after {kills} kills"
    wait_drained(world, senders)
    world.tail(victim)  # the last start: it must get everything the killed ones did not
    result = world.settle(f"4 receiver kill -9 x{kills}")
    assert result.clean, result.details() + "\n" + world.describe()
    assert result.delivered == result.expected == 40 * len(USERS) // 2 * len(USERS)


def _stored_queued(database: object, text: str) -> bool:
    try:
        with checker.read_only(database) as conn:  # type: ignore[arg-type]
            row = conn.execute(
                "SELECT status FROM messages WHERE content = ? AND outgoing = 1", (text,)
            ).fetchone()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "queued"


def test_sender_killed_after_enter_before_confirm_delivers_on_next_run(
    world: ChatWorld,
) -> None:
    world.make_group(GROUP, USERS)
    for user in USERS:
        world.tail(user)
    # The senders reach the broker through a proxy of their own, so that it can hold
    # back their publishes (no confirm can come) while the receivers go on normally.
    sender_link = FaultProxy(world.node.port)
    sender_link.start()
    try:
        cases = [("ann", "--group", GROUP), ("cyd", "--dm", "dan"), ("eve", "--group", GROUP)]
        for user, flag, target in cases:
            text = f"enter-then-kill:{user}"
            sender_link.heal()
            sender_link.hold_publishes = True
            held = sender_link.publishes_held
            run = world.start_cli(user, "send", "send", flag, target, text, url=sender_link.url())
            # The user pressed Enter: the message is stored and its publish is on the
            # wire, held back by the proxy, so no confirm can come.
            wait_for(
                lambda user=user, text=text, held=held: (
                    sender_link.publishes_held > held and _stored_queued(world.database(user), text)
                ),  # type: ignore[misc]
                30,
                f"{user}'s message to be stored and published",
                0.005,
            )
            run.kill()
            assert run.process.returncode == -9
            assert "sent" not in "\n".join(run.lines()), "the confirm came before the kill"
            sender_link.partition()  # whatever was in flight dies with the link
        sender_link.hold_publishes = False
        sender_link.heal()
        # The users run chat-tui again (any command): the outbox goes out.
        for user, _flag, _target in cases:
            again = world.cli(user, "groups")
            assert again.returncode == 0, again.stderr
            history = world.cli(user, "history", "--group", GROUP, "--json")
            assert history.returncode == 0, history.stderr
    finally:
        sender_link.close()
    for user, _flag, _target in cases:
        assert checker.outbox_size_of(world.database(user)) == 0, f"{user}'s outbox kept it"
        statuses = [
            json.loads(line)["status"]
            for line in world.cli(user, *_target_args(_flag, _target), "--json").stdout.splitlines()
        ]
        assert statuses and "queued" not in statuses, f"{user}: {statuses}"
    result = world.settle("5 sender kill -9 before confirm")
    assert result.clean, result.details() + "\n" + world.describe()
    assert result.sent == len(cases)
    assert result.delivered == result.expected == 4 + 1 + 4


def _target_args(flag: str, target: str) -> list[str]:
    return ["history", flag, target]
