"""Reading one vhost from RabbitMQ's management HTTP API (exchanges, queues, bindings)."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from kombu import Connection

from ..errors import CeleryDLXError
from .topology_spec import BrokerState

#: Management API ports RabbitMQ listens on by default, without and with TLS.
MANAGEMENT_PORTS = {False: 15672, True: 15671}
#: Names the management API when none is given (``dlx verify``, the worker bootstep in verify mode).
MANAGEMENT_URL_ENV = "CELERY_DLX_MANAGEMENT_URL"


class ManagementUnavailable(CeleryDLXError):
    """The management HTTP API could not be read: not reachable, refused the login, or failed."""


class ManagementMismatch(CeleryDLXError):
    """The management API belongs to another broker than the AMQP connection: comparing its
    listing with the app's topology would report drift that is not there."""


@dataclass(frozen=True)
class ManagementAPI:
    """Where and as whom the management HTTP API is read."""

    base_url: str
    username: str
    password: str
    timeout: float = 10.0

    @classmethod
    def for_connection(cls, connection: Connection, url: str | None = None, timeout: float = 10.0) -> ManagementAPI:
        """``url`` (credentials in it win), else ``$CELERY_DLX_MANAGEMENT_URL``, else
        ``http://<broker host>:15672`` (15671 with TLS); the login is the broker connection's
        unless the URL has one."""
        info = connection.info()
        url = url or os.environ.get(MANAGEMENT_URL_ENV) or None
        if url is None:
            host = f"[{info['hostname']}]" if ":" in info["hostname"] else info["hostname"]
            scheme = "https" if info["ssl"] else "http"
            url = f"{scheme}://{host}:{MANAGEMENT_PORTS[bool(info['ssl'])]}"
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        if parts.username is not None:
            return cls(base, unquote(parts.username), unquote(parts.password or ""), timeout)
        return cls(base, info["userid"], info["password"], timeout)

    def get(self, path: str) -> Any:
        """GET ``path`` (below the base URL) and decode its JSON."""
        login = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        what = f"GET {path.partition('?')[0]}"
        request = urllib.request.Request(
            self.base_url + path, headers={"Authorization": f"Basic {login}", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            answer = f"{exc.code} {exc.reason}"
            raise ManagementUnavailable(f"management API at {self.base_url} answered {answer} to {what}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ManagementUnavailable(f"management API not reachable at {self.base_url} ({reason})") from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ManagementUnavailable(f"{self.base_url} answered {what} with something other than JSON") from exc

    def check_same_broker(self, cluster_name: str | None, version: str | None) -> None:
        """Refuse (:class:`ManagementMismatch`) an API whose cluster name or RabbitMQ version
        differs from the AMQP connection's server properties (None: not announced, not compared)."""
        overview = self.get("/api/overview")
        theirs = {"cluster name": overview.get("cluster_name"), "version": overview.get("rabbitmq_version")}
        ours = {"cluster name": cluster_name, "version": version}
        for what, value in ours.items():
            if value is not None and theirs[what] is not None and theirs[what] != value:
                raise ManagementMismatch(
                    f"the management API at {self.base_url} belongs to another broker (node {overview.get('node')}, "
                    f"{what} {theirs[what]!r}) than the AMQP connection ({what} {value!r}); "
                    "pass --management-url (or CELERY_DLX_MANAGEMENT_URL) naming this broker's API, or use --amqp-only"
                )

    def read(self, vhost: str) -> BrokerState:
        """List ``vhost`` (``/`` is the default one; kombu's URL form ``//`` is already decoded)."""
        path = quote(vhost, safe="")
        return BrokerState.from_api(
            exchanges=self.get(f"/api/exchanges/{path}?columns=name,type,durable,auto_delete,arguments"),
            queues=self.get(f"/api/queues/{path}?columns=name,type,durable,auto_delete,arguments"),
            bindings=self.get(f"/api/bindings/{path}?columns=source,destination,destination_type,routing_key,arguments"),
            vhost=self.get(f"/api/vhosts/{path}"),
        )
