"""The RabbitMQ management HTTP API calls that `chat-tui admin` makes, on one vhost.

Every failure leaves as one `AdminError` that says what was refused and what to do; no
call is retried, and the admin password never appears in what is raised.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from yarl import URL

from chat_tui.config import redact
from chat_tui.core.errors import ChatError
from chat_tui.protocol.permissions import TopicPermissions, VhostPermissions
from chat_tui.protocol.queues import BindingSpec, ExchangeSpec, QueueSpec

TIMEOUT = 10.0
Json = Any
"""A decoded JSON body of the management API."""


class AdminError(ChatError):
    """The management API cannot do what was asked; the text is fit to show as is."""


def vhost_of(amqp_url: str) -> str:
    """The vhost an AMQP URL names, as aiormq reads it: the path, "/" when empty."""
    path = URL(amqp_url).path
    return "/" if path in ("", "/") else path[1:].replace("%2F", "/")


def _segment(value: str) -> str:
    return quote(value, safe="")


def _parse_admin_url(admin_url: str) -> tuple[URL, str]:
    """The admin URL and its login, or an AdminError that does not echo it: without a scheme yarl
    finds no password in it to redact, and some malformed ones it cannot parse at all."""
    try:
        url = URL(admin_url)
    except ValueError:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host or not url.user:
        raise AdminError(
            "the admin URL (--admin-url or CHAT_TUI_ADMIN_URL, not shown since it may hold "
            "a password) is not http(s)://USER:PASSWORD@HOST:PORT/"
        )
    return url, url.user


class ManagementApi:
    """An async client of the management API at `admin_url` (credentials included)."""

    def __init__(self, admin_url: str, vhost: str, timeout: float = TIMEOUT) -> None:
        url, self.login = _parse_admin_url(admin_url)
        self.where = redact(admin_url)
        self.vhost = vhost
        self._password = url.password or ""
        base = str(url.with_user(None).with_query(None).with_fragment(None))
        self._http = httpx.AsyncClient(
            base_url=base if base.endswith("/") else f"{base}/",
            auth=(self.login, self._password),
            timeout=timeout,
        )
        self._timeout = timeout
        self._v = _segment(vhost)

    async def __aenter__(self) -> ManagementApi:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    def _hide(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    async def _send(self, method: str, path: str, body: Json = None) -> httpx.Response:
        try:
            return await self._http.request(method, path, json=body)
        except httpx.TimeoutException:
            raise AdminError(
                f"the management API at {self.where} did not answer within {self._timeout:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise AdminError(
                f"the management API at {self.where} is unreachable "
                f"({self._hide(str(exc)) or type(exc).__name__}): check the admin URL "
                "(--admin-url or CHAT_TUI_ADMIN_URL) and that the management plugin is enabled "
                "('rabbitmq-plugins enable rabbitmq_management')"
            ) from None

    async def _call(self, method: str, path: str, body: Json = None, missing: bool = False) -> Json:
        """One request; None for a 404 when `missing` says that absence is an answer."""
        response = await self._send(method, path, body)
        if response.status_code == 404 and missing:
            return None
        self._raise_for(response, method, path)
        return response.json() if response.content else None

    async def _delete(self, path: str) -> bool:
        """False when there was nothing to delete."""
        response = await self._send("DELETE", path)
        if response.status_code == 404:
            return False
        self._raise_for(response, "DELETE", path)
        return True

    def _raise_for(self, response: httpx.Response, method: str, path: str) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 401:
            raise AdminError(
                f"the management API at {self.where} refused the login of {self.login!r}: "
                "check the user and password of the admin URL"
            )
        if status == 403:
            raise AdminError(
                f"the management API at {self.where} refused {method} /{path} to "
                f"{self.login!r}: the account needs the administrator tag and full rights "
                f"on the vhost {self.vhost!r}"
            )
        raise AdminError(
            f"the management API refused {method} /{path}: {status} {self._reason(response)}"
        )

    def _reason(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return self._hide(response.text[:200])
        if isinstance(body, dict):
            return self._hide(str(body.get("reason") or body.get("error") or body))
        return self._hide(str(body))

    async def check_vhost(self) -> None:
        if await self._call("GET", f"api/vhosts/{self._v}", missing=True) is None:
            raise AdminError(
                f"the vhost {self.vhost!r} (from amqp_url) does not exist on the broker: "
                f"create it ('rabbitmqctl add_vhost {self.vhost}') or fix amqp_url"
            )

    # Accounts
    async def users(self) -> list[Json]:
        found: list[Json] = await self._call("GET", "api/users")
        return found

    async def user(self, name: str) -> Json | None:
        return await self._call("GET", f"api/users/{_segment(name)}", missing=True)

    async def put_user(self, name: str, password: str, tags: list[str]) -> None:
        body = {"password": password, "tags": ",".join(tags)}
        await self._call("PUT", f"api/users/{_segment(name)}", body)

    async def user_connections(self, name: str) -> int:
        """How many connections `name` has open, on every node of the cluster."""
        found: list[Json] = await self._call("GET", f"api/connections/username/{_segment(name)}")
        return len(found)

    async def close_user_connections(self, name: str) -> None:
        """Close every connection of `name`: RabbitMQ keeps those opened before a new
        password or the account's deletion."""
        await self._delete(f"api/connections/username/{_segment(name)}")

    async def delete_user(self, name: str) -> bool:
        """False when there was no such account."""
        return await self._delete(f"api/users/{_segment(name)}")

    # Permissions on the vhost
    async def permissions(self) -> list[Json]:
        found: list[Json] = await self._call("GET", f"api/vhosts/{self._v}/permissions")
        return found

    async def user_permissions(self, user: str) -> Json | None:
        return await self._call("GET", f"api/permissions/{self._v}/{_segment(user)}", missing=True)

    async def put_permissions(self, user: str, wanted: VhostPermissions) -> None:
        body = {"configure": wanted.configure, "write": wanted.write, "read": wanted.read}
        await self._call("PUT", f"api/permissions/{self._v}/{_segment(user)}", body)

    async def topic_permissions(self) -> list[Json]:
        found: list[Json] = await self._call("GET", f"api/vhosts/{self._v}/topic-permissions")
        return found

    async def user_topic_permissions(self, user: str) -> list[Json]:
        path = f"api/topic-permissions/{self._v}/{_segment(user)}"
        found: list[Json] | None = await self._call("GET", path, missing=True)
        return found or []

    async def put_topic_permissions(self, user: str, wanted: TopicPermissions) -> None:
        body = {"exchange": wanted.exchange, "write": wanted.write, "read": wanted.read}
        await self._call("PUT", f"api/topic-permissions/{self._v}/{_segment(user)}", body)

    async def delete_topic_permissions(self, user: str) -> None:
        await self._delete(f"api/topic-permissions/{self._v}/{_segment(user)}")

    # Exchanges, queues, bindings
    async def exchange(self, name: str) -> Json | None:
        return await self._call("GET", f"api/exchanges/{self._v}/{_segment(name)}", missing=True)

    async def exchanges(self) -> list[Json]:
        found: list[Json] = await self._call("GET", f"api/exchanges/{self._v}?columns=name,type")
        return found

    async def put_exchange(self, spec: ExchangeSpec) -> None:
        body = {"type": spec.type, "durable": spec.durable, "auto_delete": False, "arguments": {}}
        await self._call("PUT", f"api/exchanges/{self._v}/{_segment(spec.name)}", body)

    async def queues(self) -> list[Json]:
        found: list[Json] = await self._call("GET", f"api/queues/{self._v}?columns=name")
        return found

    async def queue(self, name: str) -> Json | None:
        return await self._call("GET", f"api/queues/{self._v}/{_segment(name)}", missing=True)

    async def put_queue(self, spec: QueueSpec) -> None:
        body = {"durable": spec.durable, "auto_delete": False, "arguments": dict(spec.arguments)}
        await self._call("PUT", f"api/queues/{self._v}/{_segment(spec.name)}", body)

    async def delete_queue(self, name: str) -> bool:
        """False when there was no such queue."""
        return await self._delete(f"api/queues/{self._v}/{_segment(name)}")

    def _bindings_path(self, spec: BindingSpec) -> str:
        return f"api/bindings/{self._v}/e/{_segment(spec.exchange)}/q/{_segment(spec.queue)}"

    async def binding_exists(self, spec: BindingSpec) -> bool:
        found: list[Json] = await self._call("GET", self._bindings_path(spec))
        return any(b.get("routing_key") == spec.routing_key for b in found)

    async def add_binding(self, spec: BindingSpec) -> None:
        body = {"routing_key": spec.routing_key, "arguments": {}}
        await self._call("POST", self._bindings_path(spec), body)
