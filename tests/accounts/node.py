"""A private RabbitMQ node with the management plugin, for the accounts tests: the fault
suite's `BrokerNode` (own name, ports, data, config and PID), plus the plugin on a free
loopback port and an administrator account. `guest` stays as RabbitMQ creates it on a
fresh node: loopback-only, unlike the fault node's (`loopback_users = none`).
"""

from __future__ import annotations

import secrets
import time
import uuid
from urllib.parse import quote

import httpx

from tests.faults.broker_node import START_TIMEOUT, BrokerNode, free_port

ADMIN_USER = "admin"


class ManagedNode(BrokerNode):
    """`start()`, `stop()`, `destroy()` as `BrokerNode`; `admin_url` and `amqp_url()` to
    reach it, `http()` for a management API client logged in as the administrator."""

    def __init__(self) -> None:
        # _prepare() runs inside BrokerNode.__init__ and needs the management port.
        self.management_port = free_port()
        self.admin_password = secrets.token_urlsafe(18)
        super().__init__()
        self.name = f"chataccounts-{uuid.uuid4().hex[:8]}@localhost"

    def _prepare(self) -> None:
        super()._prepare()
        # Rewritten in place, so the owner and modes BrokerNode gave them stay.
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            f"management.tcp.port = {self.management_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            "disk_free_limit.absolute = 10MB\n"
        )

    @property
    def management_base(self) -> str:
        return f"http://127.0.0.1:{self.management_port}/"

    @property
    def admin_url(self) -> str:
        """What `chat-tui admin --admin-url` takes: the administrator's login included."""
        return f"http://{ADMIN_USER}:{self.admin_password}@127.0.0.1:{self.management_port}/"

    def amqp_url(self, user: str, password: str, vhost: str = "/") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def http(self) -> httpx.Client:
        """A management API client logged in as the administrator."""
        return httpx.Client(
            base_url=self.management_base, auth=(ADMIN_USER, self.admin_password), timeout=10
        )

    def start(self, timeout: float = START_TIMEOUT) -> float:
        began = time.monotonic()
        super().start(timeout)
        first_start = self.starts == 1
        # On a fresh node only guest can log in, from loopback, as an administrator.
        creator = ("guest", "guest") if first_start else (ADMIN_USER, self.admin_password)
        with httpx.Client(base_url=self.management_base, auth=creator, timeout=10) as api:
            self._wait_for_management(api, began + timeout)
            if first_start:
                self._create_admin(api)
        return time.monotonic() - began

    def _wait_for_management(self, api: httpx.Client, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if api.get("api/overview").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"{self.name}: no management API on {self.management_port}")

    def _create_admin(self, api: httpx.Client) -> None:
        api.put(
            f"api/users/{ADMIN_USER}",
            json={"password": self.admin_password, "tags": "administrator"},
        ).raise_for_status()
        api.put(
            f"api/permissions/%2F/{ADMIN_USER}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()

    def add_vhost(self, vhost: str) -> None:
        """A vhost of its own for one test (accounts are per node, permissions per vhost),
        with the administrator's full rights on it."""
        with self.http() as api:
            api.put(f"api/vhosts/{quote(vhost, safe='')}").raise_for_status()
            api.put(
                f"api/permissions/{quote(vhost, safe='')}/{ADMIN_USER}",
                json={"configure": ".*", "write": ".*", "read": ".*"},
            ).raise_for_status()

    def delete_vhost(self, vhost: str) -> None:
        with self.http() as api:
            response = api.delete(f"api/vhosts/{quote(vhost, safe='')}")
            if response.status_code != 404:
                response.raise_for_status()

    def delete_user(self, user: str) -> None:
        with self.http() as api:
            response = api.delete(f"api/users/{quote(user, safe='')}")
            if response.status_code != 404:
                response.raise_for_status()
