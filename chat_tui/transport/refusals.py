"""What the broker's no means, for each link: which failures are refusals (never
retried) and which are trouble to retry, and a refusal's text, which says what was
refused and what to do about it.

The texts read the link's own state: its login and user ID, its mode, the node it is
on, its `queue_type`. A chat user's link (`ClientRefusals`) and the archive's
(`ArchiveRefusals`) tell different people different things, so each has its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from aio_pika.exceptions import ProbableAuthenticationError
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelClosed,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    InvalidFrameError,
)
from yarl import URL

from chat_tui.config import redact
from chat_tui.protocol.names import Names
from chat_tui.protocol.queues import QueueType, type_bound_arguments
from chat_tui.transport.errors import (
    AuthenticationRefused,
    BrokerRefused,
    BrokerUnreachable,
    CertificateRefused,
    QueueUnavailable,
    SetupRefused,
    broker_reply,
    certificate_failure,
)
from chat_tui.transport.nodes import BrokerNodes

_INEQUIVALENT = re.compile(r"inequivalent arg '(?P<argument>[^']+)' for queue '(?P<queue>[^']+)'")
"""RabbitMQ's PRECONDITION_FAILED text for a queue declared again with other arguments."""


class Refusals(Protocol):
    """How one link reads a failed connection and a channel closed while setting up."""

    def connect_failure(self, exc: BaseException) -> BrokerRefused | BrokerUnreachable:
        """What a failed attempt to open a connection means: a refusal, or "retry"."""
        ...

    def setup_refusal(self, exc: ChannelClosed) -> SetupRefused | None:
        """What a channel closed while setting up means; None for "retry"."""
        ...


def missing_object(reply: str) -> str:
    """What a NOT_FOUND reply names: "queue 'q' in vhost '/'" of "NOT_FOUND - no queue
    'q' in vhost '/'", to follow "the broker has no"."""
    return reply.removeprefix("NOT_FOUND - ").removeprefix("no ")


_QUEUE_DOWN = re.compile(
    r"home node '(?P<node>[^']+)' of durable queue '(?P<queue>[^']+)'.* is down or inaccessible"
)


def _queue_down_reply(exc: BaseException) -> re.Match[str] | None:
    if not isinstance(exc, ChannelNotFoundEntity):
        return None
    return _QUEUE_DOWN.search(broker_reply(exc))


def queue_down(where: str, exc: BaseException) -> QueueUnavailable | None:
    """A NOT_FOUND that means a queue's node is down, not that the queue is missing:
    what it is, in words, or None for any other failure. Never a refusal: on a cluster
    the node comes back."""
    found = _queue_down_reply(exc)
    if found is None:
        return None
    reply = broker_reply(exc)
    return QueueUnavailable(
        f"RabbitMQ at {where} answered, but its queue {found['queue']!r} is unavailable: "
        f"its node {found['node']} is down or out of reach ({reply}). On a cluster it "
        "comes back with that node, and chat-tui keeps trying. If that node is running, "
        'RabbitMQ has lost the queue: see "A queue RabbitMQ lost" in the README',
        found["queue"],
    )


def _unreachable(where: str, exc: BaseException) -> BrokerUnreachable:
    detail = broker_reply(exc) if isinstance(exc, InvalidFrameError) else str(exc)
    return BrokerUnreachable(f"cannot reach RabbitMQ at {where}: {detail or type(exc).__name__}")


def _vhost_closed(exc: BaseException) -> bool:
    # RabbitMQ answers Connection.Open with Connection.Close when the login may not use
    # the virtual host (or it does not exist); aiormq reports that as an unexpected
    # frame and drops the reply text, so its name is all there is.
    return isinstance(exc, InvalidFrameError) and "Connection.Close" in str(exc)


class ClientRefusals:
    """A chat user's link: the user is told what to check, or which `chat-tui admin`
    command an administrator runs."""

    def __init__(
        self,
        nodes: BrokerNodes,
        names: Names,
        user_id: str,
        *,
        accounts_mode: bool,
        queue_type: QueueType,
    ) -> None:
        self._nodes = nodes
        self._names = names
        self._user_id = user_id
        self._accounts_mode = accounts_mode
        self._queue_type: QueueType = queue_type

    def connect_failure(self, exc: BaseException) -> BrokerRefused | BrokerUnreachable:
        where, login = redact(self._nodes.url), self._nodes.login
        if isinstance(exc, ProbableAuthenticationError):
            if self._accounts_mode:
                # RabbitMQ says the same for a wrong password and an account removed.
                what_to_do = (
                    "check the password (CHAT_TUI_PASSWORD, password_file or amqp_url); an "
                    f"administrator sets a new one with 'chat-tui admin passwd {login}', "
                    "or, if the account was removed, adds it again with "
                    f"'chat-tui admin add-user {login}'"
                )
            else:
                what_to_do = self._open_mode_login()
            return AuthenticationRefused(
                f"the broker at {where} refused the credentials of "
                f"{login!r} ({broker_reply(exc)}): {what_to_do}"
            )
        if _vhost_closed(exc):
            if self._accounts_mode:
                what_to_do = f"an administrator gives them with 'chat-tui admin add-user {login}'"
            else:
                what_to_do = self._open_mode_login()
            return AuthenticationRefused(
                f"the broker at {where} refused {login!r} access to its "
                f"virtual host {URL(self._nodes.url).path.lstrip('/') or '/'!r}: it does not "
                f"exist, or the account has no permissions there; {what_to_do}"
            )
        certificate = certificate_failure(exc)
        if certificate is not None:
            return CertificateRefused(
                f"the certificate of the broker at {where} cannot be trusted "
                f"({certificate.verify_message or certificate}): give the CA that signed "
                "it with tls_ca_file (CHAT_TUI_TLS_CA_FILE), and connect by the host "
                "name the certificate names"
            )
        return _unreachable(where, exc)

    def _open_mode_login(self) -> str:
        """Why a shared login fails on a broker with accounts, which the issue wants said."""
        return (
            f"the login {self._nodes.login!r} differs from the user ID {self._user_id!r}, so "
            "chat-tui runs in open mode, with a login everyone shares; if this broker has "
            f"accounts, log in as {self._user_id!r}, with your own password "
            "(CHAT_TUI_PASSWORD, password_file or amqp_url)"
        )

    def setup_refusal(self, exc: ChannelClosed) -> SetupRefused | None:
        """Setting up, or aio-pika restoring the channels, alike."""
        if _queue_down_reply(exc) is not None:
            return None  # `queue_down`
        reply, login = broker_reply(exc), self._nodes.login
        if isinstance(exc, ChannelAccessRefused):
            if not self._accounts_mode:
                return SetupRefused(
                    f"the broker refused to set up chat-tui for {login!r} ({reply}). "
                    f"The login {login!r} differs from the user ID {self._user_id!r}, "
                    "so chat-tui ran in open mode, where each client declares the shared "
                    f"objects; this broker has accounts: log in as {self._user_id!r}, with "
                    "your own password"
                )
            return SetupRefused(
                f"the broker refused {login!r} a right it needs ({reply}): an "
                f"administrator repairs it with 'chat-tui admin add-user {login}', "
                "and 'chat-tui admin check' shows what differs"
            )
        if isinstance(exc, ChannelPreconditionFailed):
            mismatch = self._queue_type_mismatch(reply)
            if mismatch is not None:
                return mismatch
            return SetupRefused(
                f"the broker holds an object declared with other arguments ({reply}): "
                "someone else declared it; an administrator must delete it (after saving "
                "any messages in it), then run 'chat-tui admin init' on a deployment "
                "with accounts"
            )
        if isinstance(exc, ChannelNotFoundEntity) and self._accounts_mode:
            return SetupRefused(
                f"the broker has no {missing_object(reply)}: an administrator "
                f"runs 'chat-tui admin init' and 'chat-tui admin add-user {self._user_id}'"
            )
        # In open mode the client declares every object itself: one missing now went
        # away while we set up (a restart, a delete), and the next attempt declares it.
        return None

    def _queue_type_mismatch(self, reply: str) -> SetupRefused | None:
        """A queue of ours that differs in an argument that only one of the two layouts
        has: the deployment was set up with the other queue_type."""
        found = _INEQUIVALENT.search(reply)
        if found is None or found["argument"] not in type_bound_arguments(self._names):
            return None
        other = "classic" if self._queue_type == "quorum" else "quorum"
        return SetupRefused(
            f"the broker's {found['queue']} is a {other} queue, but this client is set to "
            f"queue_type = {self._queue_type} ({reply}): set queue_type to {other} "
            "(config.toml or CHAT_TUI_QUEUE_TYPE) to match the deployment; its queues got "
            "their type when it was set up, and a queue cannot change type"
        )

    def missing_objects(self, shared: Sequence[str], own: Sequence[str]) -> SetupRefused | None:
        """Accounts mode: what it means that the broker lacks these objects (shared ones,
        or the user's own queues); None when nothing is missing."""
        if shared:
            return SetupRefused(
                f"the broker has no {', '.join(shared)}: chat-tui is not set up on it "
                f"yet; an administrator runs 'chat-tui admin init' (namespace "
                f"{self._names.namespace!r})"
            )
        if own:
            return SetupRefused(
                f"the broker has no {', '.join(own)}: {self._user_id!r} has no account "
                f"here yet; an administrator runs 'chat-tui admin add-user {self._user_id}'"
            )
        return None


class ArchiveRefusals:
    """The archive's link: its operator is told about the archive's account."""

    def __init__(
        self, nodes: BrokerNodes, names: Names, *, accounts_mode: bool, queue_type: QueueType
    ) -> None:
        self._nodes = nodes
        self._names = names
        self._accounts_mode = accounts_mode
        self._queue_type: QueueType = queue_type

    def connect_failure(self, exc: BaseException) -> BrokerRefused | BrokerUnreachable:
        where = redact(self._nodes.url)
        if isinstance(exc, ProbableAuthenticationError) or _vhost_closed(exc):
            return AuthenticationRefused(
                f"the broker at {where} refused the login {self._nodes.login!r} or its "
                f"access to the virtual host ({broker_reply(exc)}): {self._account_advice()}"
            )
        certificate = certificate_failure(exc)
        if certificate is not None:
            return CertificateRefused(
                f"the certificate of the broker at {where} cannot be trusted "
                f"({certificate.verify_message or certificate}): give the CA that signed "
                "it with tls_ca_file, and connect by the host name the certificate names"
            )
        return _unreachable(where, exc)

    def _account_advice(self) -> str:
        if self._accounts_mode:
            return (
                "check the archive's password (CHAT_TUI_PASSWORD, password_file or amqp_url); "
                "an administrator (re)creates the account with 'chat-tui admin add-archive'"
            )
        return (
            f"the login {self._nodes.login!r} is not the archive's account, so the archive "
            "runs in open mode with a shared login; on a broker with accounts, log in as "
            f"{self._names.namespace}.archive (made by 'chat-tui admin add-archive')"
        )

    def setup_refusal(self, exc: ChannelClosed) -> SetupRefused | None:
        """Setting up or restoring alike."""
        if _queue_down_reply(exc) is not None:
            return None  # `queue_down`
        reply = broker_reply(exc)
        if isinstance(exc, ChannelAccessRefused):
            return SetupRefused(
                f"the broker refused {self._nodes.login!r} a right the archive needs ({reply}): "
                f"{self._account_advice()}, and 'chat-tui admin check' shows what differs"
            )
        if isinstance(exc, ChannelPreconditionFailed):
            return SetupRefused(
                f"the broker holds an archive queue declared with other arguments ({reply}): "
                f"queue_type is {self._queue_type}; set it to the deployment's, or an "
                "administrator deletes the queue (after saving any messages in it)"
            )
        if isinstance(exc, ChannelNotFoundEntity) and self._accounts_mode:
            return SetupRefused(
                f"the broker has no {missing_object(reply)}: an administrator "
                f"runs 'chat-tui admin init' (namespace {self._names.namespace!r})"
            )
        return None
