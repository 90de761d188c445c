"""The broker nodes one link dials: the URLs of `amqp_url`, their one login and password,
TLS, and which node the link is on.

aio-pika has no list of hosts (its issue #141), but its robust connection dials its
public `url` attribute afresh on every reconnect attempt (aio-pika 10.2, pinned <11 in
pyproject.toml; aio-pika's own `update_secret` reassigns that attribute too). So a link
takes the first node that answers at start, and `point_at` aims the next reconnect
attempt at another node; no private method of aio-pika is used.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from pydantic import SecretStr
from yarl import URL

from chat_tui.config import connection_url, login_of, node_of, without_password


def skips_verification(url: str) -> bool:
    """The URL asks for TLS without checking the broker's certificate (`no_verify_ssl`)."""
    return URL(url).query.get("no_verify_ssl", "0") != "0"


def tls_context(ca_file: Path | None, *, verify: bool) -> ssl.SSLContext | None:
    """A context that trusts `ca_file`; None leaves TLS to the URL (system CAs)."""
    if ca_file is None:
        return None
    context = ssl.create_default_context(cafile=str(ca_file))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class BrokerNodes:
    """The nodes of a cluster (or the one broker), tried in order, round the list."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        password: SecretStr | None = None,
        tls_ca_file: Path | None = None,
        tls_insecure: bool = False,
    ) -> None:
        given = [urls] if isinstance(urls, str) else list(urls)
        if not given:
            raise ValueError("no broker URL given")
        if len({login_of(each) for each in given}) > 1:
            raise ValueError("the broker URLs must all log in with the same username")
        # `tls_insecure` only allows `no_verify_ssl` in the URL; it turns nothing off by
        # itself. aiormq ignores the URL's flag once it is handed a context, so the
        # context carries it.
        skip_verification = any(skips_verification(each) for each in given)
        if skip_verification and not tls_insecure:
            raise ValueError(
                "no_verify_ssl in the URL turns off the check of the broker's certificate; "
                "set tls_insecure to do that on purpose"
            )
        self.urls = tuple(without_password(each) for each in given)
        """Without the password, fit to show."""
        self.index = 0
        """The node the link is on, or dials next."""
        self.login = login_of(given[0])
        in_url = URL(given[0]).password
        self.password = password if password is not None or in_url is None else SecretStr(in_url)
        self.tls_context = tls_context(tls_ca_file, verify=not skip_verification)

    @property
    def url(self) -> str:
        """The URL of the node the link is on (or dials next), without the password."""
        return self.urls[self.index]

    @property
    def node(self) -> str:
        """`host:port` of that node."""
        return node_of(self.url)

    @property
    def several(self) -> bool:
        return len(self.urls) > 1

    def dial_url(self, index: int | None = None) -> str:
        """The URL to connect to, password included: never to be shown."""
        return connection_url(self.urls[self.index if index is None else index], self.password)

    def each(self) -> Iterator[str]:
        """Every node in order, each the current one while it is tried: a first connect."""
        for index in range(len(self.urls)):
            self.index = index
            yield self.url

    def point_at(self, index: int, connection: AbstractRobustConnection | None) -> None:
        """Make `urls[index]` (round the list) the node that `connection`'s next
        reconnect attempt dials."""
        self.index = index % len(self.urls)
        if isinstance(connection, aio_pika.RobustConnection):
            connection.url = URL(self.dial_url())

    def move_on(self, connection: AbstractRobustConnection | None) -> None:
        """After a loss: the next node, since the one that failed us is the least
        likely to answer."""
        if self.several:
            self.point_at(self.index + 1, connection)

    def note_dialled(self, connection: AbstractRobustConnection | None) -> None:
        """Which node a restored `connection` is on: the one aio-pika dialled last,
        whatever has been pointed at since."""
        transport = connection.transport if connection is not None else None
        if transport is None:
            return
        dialled = node_of(without_password(str(transport.connection.url)))
        for index, url in enumerate(self.urls):
            if node_of(url) == dialled:
                self.index = index
                return
