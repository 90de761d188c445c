"""Failover between broker nodes: the URL list in the settings, and the transport's
rotation through it at the first connection and after a loss.

The "nodes" here are TCP proxies in front of the one test broker: stopping a proxy
cuts every connection through it at once, as a node killed with -9 does, without
touching the shared broker. The cluster suite does the same with real nodes.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from yarl import URL

from chat_tui.config import SettingsError, load_settings, redact
from chat_tui.core.status import ClientStatus, ConnectionState, StatusBoard
from chat_tui.protocol.conversations import Conversation
from chat_tui.protocol.names import Names
from chat_tui.transport.connection import LinkState, LinkStatus, Transport
from chat_tui.transport.errors import BrokerUnreachable
from chat_tui.tui.widgets.header import describe_status
from tests.conftest import Deployment, RecordingSink, eventually
from tests.test_config import clean_env  # noqa: F401  (a fixture)


class NodeProxy:
    """A stand-in node: forwards TCP to the broker until `kill` cuts it all."""

    def __init__(self, broker: URL) -> None:
        self._broker_host = broker.host or "localhost"
        self._broker_port = broker.port or 5672
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, broker: URL) -> str:
        return str(broker.with_host("127.0.0.1").with_port(self.port))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self._broker_host, self._broker_port
            )
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()

    def cut(self) -> None:
        """Reset the open connections; new ones are still let through."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def kill(self) -> None:
        """Refuse new connections and reset the open ones, like a dead node's kernel."""
        if self._server is not None:
            self._server.close()
        self.cut()


@pytest.fixture
async def nodes(amqp_url: str) -> AsyncIterator[list[NodeProxy]]:
    proxies = [NodeProxy(URL(amqp_url)) for _ in range(2)]
    for proxy in proxies:
        await proxy.start()
    yield proxies
    for proxy in proxies:
        await proxy.kill()


def closed_port_url(broker: str) -> str:
    """A node that is down: nothing listens on the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return str(URL(broker).with_host("127.0.0.1").with_port(port))


# --- the settings ------------------------------------------------------------------


def test_a_toml_list_of_urls_is_read_in_order(clean_env: Path) -> None:  # noqa: F811
    clean_env.write_text(
        'amqp_url = ["amqp://guest:guest@node-a:5672/", "amqp://guest:guest@node-b:5673/"]\n',
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.broker_urls == ["amqp://guest@node-a:5672/", "amqp://guest@node-b:5673/"]
    assert settings.broker_url == "amqp://guest@node-a:5672/"
    assert settings.broker_login == "guest"
    assert settings.broker_password is not None
    assert settings.broker_password.get_secret_value() == "guest"


def test_comma_separated_urls_from_the_environment_and_a_flag(
    clean_env: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAT_TUI_AMQP_URL", "amqp://bob@a/, amqp://bob@b/")
    assert load_settings().broker_urls == ["amqp://bob@a/", "amqp://bob@b/"]
    flagged = load_settings(amqp_url="amqp://bob@c/,amqp://bob@d/,amqp://bob@e/")
    assert flagged.broker_urls == ["amqp://bob@c/", "amqp://bob@d/", "amqp://bob@e/"]
    assert flagged.broker_login == "bob"


def test_one_url_reads_as_before(clean_env: Path) -> None:  # noqa: F811
    settings = load_settings(amqp_url="amqp://alice:pw@host:5672/chat")
    assert settings.broker_urls == ["amqp://alice@host:5672/chat"]
    assert settings.broker_url == "amqp://alice@host:5672/chat"


@pytest.mark.parametrize(
    "urls",
    [
        "amqp://alice@a/,amqp://guest@b/",
        "amqp://alice:one@a/,amqp://alice:two@b/",
    ],
)
def test_urls_that_log_in_differently_are_refused(
    clean_env: Path,  # noqa: F811
    urls: str,
) -> None:
    with pytest.raises(SettingsError, match=r"^amqp_url: the broker URLs log in differently"):
        load_settings(amqp_url=urls)


@pytest.mark.parametrize("urls", ["amqp://a/,http://b/", " , ", "amqp://a/,b:5672"])
def test_a_list_with_a_bad_url_is_refused(clean_env: Path, urls: str) -> None:  # noqa: F811
    with pytest.raises(SettingsError, match=r"^amqp_url: "):
        load_settings(amqp_url=urls)


def test_tls_checks_cover_every_url(clean_env: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(SettingsError, match="no_verify_ssl"):
        load_settings(amqp_url="amqps://a/,amqps://b/?no_verify_ssl=1")
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="does not use TLS"):
        load_settings(amqp_url="amqps://a/,amqp://b/", tls_ca_file=ca)


# --- what is shown -----------------------------------------------------------------


def test_the_header_names_the_node_while_online() -> None:
    now = datetime.now(UTC)
    online = ClientStatus(ConnectionState.ONLINE, node="10.0.0.2:5672")
    assert describe_status(online, now).plain == "● online via 10.0.0.2:5672"
    reconnecting = ClientStatus(ConnectionState.RECONNECTING, node=None)
    assert describe_status(reconnecting, now).plain == "● reconnecting"


def test_the_status_carries_the_node_only_while_online() -> None:
    shown: list[ClientStatus] = []
    board = StatusBoard(shown.append)
    board.consumers_ready()
    board.link_changed(LinkStatus(LinkState.ONLINE, node="a:5672"))
    assert shown[-1].node == "a:5672"
    board.link_changed(LinkStatus(LinkState.RECONNECTING, node="a:5672"))
    assert shown[-1].node is None


# --- the transport's rotation ------------------------------------------------------


def test_the_transport_refuses_urls_with_different_logins() -> None:
    with pytest.raises(ValueError, match="same username"):
        Transport(["amqp://alice@a/", "amqp://bob@b/"], Names("t"), "alice")


def test_the_transport_keeps_no_password_of_any_url() -> None:
    transport = Transport(["amqp://a:secret@a/", "amqp://a:secret@b/"], Names("t"), "a")
    assert transport.urls == ("amqp://a@a/", "amqp://a@b/")
    assert all("secret" not in url for url in transport.urls)


async def test_every_node_down_is_unreachable_and_names_each(amqp_url: str) -> None:
    dead = [closed_port_url(amqp_url), closed_port_url(amqp_url)]
    transport = Transport(dead, Names("t"), "alice", reconnect_interval=0.2)
    with pytest.raises(BrokerUnreachable, match="cannot reach any of the 2 RabbitMQ nodes") as got:
        await transport.connect(connect_timeout=2)
    for url in dead:
        assert str(URL(url).port) in str(got.value)
    assert not transport.online


async def test_the_first_node_that_answers_is_taken(deployment: Deployment) -> None:
    dead = closed_port_url(deployment.amqp_url)
    live = str(URL(deployment.amqp_url).with_host("127.0.0.1"))
    seen: list[LinkStatus] = []
    transport = Transport([dead, live], deployment.names, "alice", reconnect_interval=0.2)
    transport.on_status = seen.append
    deployment.users.add("alice")
    try:
        await transport.connect()
        assert transport.online
        assert transport.url == str(URL(live).with_password(None))
        assert seen[-1].node == f"127.0.0.1:{URL(live).port or 5672}"
    finally:
        await transport.close()


@pytest.mark.parametrize("dead_node_between", [False, True])
async def test_the_client_fails_over_to_the_next_node_and_keeps_receiving(
    deployment: Deployment, nodes: list[NodeProxy], dead_node_between: bool
) -> None:
    broker = URL(deployment.amqp_url)
    first, second = nodes
    urls = [first.url(broker), second.url(broker)]
    if dead_node_between:
        # The reconnect meets a node that is down too, and must move past it.
        urls.insert(1, closed_port_url(deployment.amqp_url))
    sink = RecordingSink()
    alice = await deployment.client("alice", sink, amqp_url=",".join(urls))
    bob = await deployment.client("bob", amqp_url=second.url(broker))
    assert alice.status.node == f"127.0.0.1:{first.port}"
    await bob.send(Conversation.dm("alice"), "before")
    await eventually(lambda: sink.contents() == ["before"], what="the first message")

    killed_at = time.monotonic()
    await first.kill()
    await eventually(
        lambda: alice.online and alice.status.node == f"127.0.0.1:{second.port}",
        timeout=10,
        what="alice on the second node",
    )
    failover = time.monotonic() - killed_at
    assert failover < 5, f"failover took {failover:.1f} s"

    await bob.send(Conversation.dm("alice"), "after")
    sent = await alice.send(Conversation.dm("bob"), "from alice, after")
    await eventually(lambda: sink.contents() == ["before", "after"], what="the second message")
    assert (await alice.wait_sent(sent.message_id, timeout=10)) is not None


async def test_one_url_reconnects_to_it_as_before(
    deployment: Deployment, nodes: list[NodeProxy]
) -> None:
    """A lone node that comes back: the client stays on it (nothing to rotate to)."""
    broker = URL(deployment.amqp_url)
    only = nodes[0]
    sink = RecordingSink()
    alice = await deployment.client("alice", sink, amqp_url=only.url(broker))
    only.cut()
    await eventually(
        lambda: any(s.state is ConnectionState.RECONNECTING for s in sink.statuses),
        what="the loss",
    )
    await eventually(lambda: alice.online, timeout=10, what="alice back")
    assert alice.status.node == f"127.0.0.1:{only.port}"


def test_messages_show_no_password_of_any_url() -> None:
    shown = redact("amqp://bob:first@a/,amqp://bob:second@b/")
    assert shown == "amqp://bob:***@a/, amqp://bob:***@b/"
