"""The dashboard published through the gateway, for real: ``meshop gateway run`` (its own Caddy, TLS with
the internal CA) over a real Consul with ACLs, a Gateway document naming the dashboard host, and a
``Dashboard`` served in-process on loopback with ``--public-host`` and a password. Requests go to the
gateway's HTTPS port with the dashboard host as SNI and Host, verified against the gateway's CA."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from urllib.parse import urlencode

import yaml

from meshop.consul.config import ConsulConfig
from meshop.consul.store import KVStore
from meshop.dashboard.auth import PasswordHash, hash_password
from meshop.dashboard.server import Dashboard, Settings
from meshop.model import keys
from meshop.model.records import DashboardPublication, loads_json
from tests.integration.routing.helpers import Gateway, start_gateway, stop_caddy_dir
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until

PASSWORD = "correct horse battery staple"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []


@dataclass
class Published:
    store: KVStore
    gateway: Gateway
    gateway_id: str
    domain: str
    host: str
    dashboard: Dashboard
    admin: KVStore  # the master token's: writes what only the controller may (a route record)

    @property
    def ca(self) -> str:
        return self.gateway.ca

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.gateway.https_port}/"

    def request(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        host: str | None = None,
        sni: str | None = None,
        source: str = "127.0.0.1",
        **kw: object,
    ) -> Answer:
        """One request to the gateway's TLS as ``host`` (SNI ``sni``, default the host), the CA verified,
        from the loopback address ``source`` (a visitor of its own)."""
        headers = dict(kw.pop("headers", None) or {})  # type: ignore[call-overload]
        body = kw.pop("form", None)
        data = urlencode(body).encode() if isinstance(body, dict) else None
        if data is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        name = host or self.host
        context = ssl.create_default_context(cafile=self.ca)
        context.check_hostname = sni is None
        conn = http.client.HTTPSConnection(sni or name, self.gateway.https_port, context=context, timeout=10)
        port = self.gateway.https_port
        conn._create_connection = lambda _a, t=10, s=None: socket.create_connection(("127.0.0.1", port), t, (source, 0))  # type: ignore[attr-defined]
        try:
            conn.request(method, path, body=data, headers={"Host": f"{name}:{port}", **headers})
            response = conn.getresponse()
            return Answer(response.status, response.headers, response.read().decode("utf-8", "replace"))
        finally:
            conn.close()

    def sign_in(self, password: str = PASSWORD, source: str = "127.0.0.1", **headers: str) -> Answer:
        return self.request(
            "/login",
            method="POST",
            form={"method": "password", "password": password},
            headers={"Origin": f"https://{self.host}:{self.gateway.https_port}", **headers},
            source=source,
        )

    def point_at(self, upstream: str) -> None:
        """Rewrite the Gateway document's ``spec.dashboard.upstream`` (as an operator would)."""
        self.store.put(keys.DESIRED_GATEWAY, gateway_document(self.domain, self.host, upstream))

    def publication(self) -> DashboardPublication | None:
        entry = self.store.get(keys.gateway_dashboard(self.gateway_id))
        return DashboardPublication.from_dict(loads_json(entry.value)) if entry else None

    def await_reason(self, reason: str, timeout: float = 30.0) -> DashboardPublication:
        def seen() -> DashboardPublication | None:
            found = self.publication()
            return found if found is not None and found.reason == reason else None

        wait_until(seen, timeout, what=f"gateways/{self.gateway_id}/dashboard to say {reason}: {self.logs()}")
        found = seen()
        assert found is not None
        return found

    def logs(self) -> str:
        return self.gateway.process.log_tail()


def gateway_document(domain: str, host: str, upstream: str) -> str:
    doc = {
        "apiVersion": "meshop.io/v1alpha1",
        "kind": "Gateway",
        "metadata": {"name": "gateway"},
        "spec": {"domains": [domain], "tls": {"mode": "internal"}, "dashboard": {"host": host, "upstream": upstream}},
    }
    return yaml.safe_dump(doc)


def serve_dashboard(consul: ConsulServer, prefix: str, port: int = 0, **settings: object) -> Dashboard:
    """A dashboard on loopback (``port``, 0: any free one) reading with the read-only role's token."""
    config = acl.config_for(consul.addr, prefix, "readonly")
    return Dashboard(config, Settings(listen=f"127.0.0.1:{port}", **settings)).start()  # type: ignore[arg-type]


def published_settings(host: str) -> dict[str, object]:
    """What the published dashboard runs with: ``--public-host`` and a password."""
    return {"password": PasswordHash.parse(hash_password(PASSWORD)), "public_hosts": (host,)}


@contextmanager
def published_dashboard(consul: ConsulServer, prefix: str, workdir: Path) -> Iterator[Published]:
    """Gateway + published dashboard; the document is in KV and the gateway has said LoginRequired."""
    store = KVStore(acl.config_for(consul.addr, prefix, "operator"))
    domain = f"{prefix}.test"
    host = f"dash.{domain}"
    dashboard = serve_dashboard(consul, prefix, **published_settings(host))
    gid = f"gw{prefix[-6:]}"
    gateway = published = None
    try:
        store.put(keys.DESIRED_GATEWAY, gateway_document(domain, host, f"127.0.0.1:{dashboard.port}"))
        gateway = start_gateway(consul.addr, prefix, workdir, "--id", gid)
        master = ConsulConfig.from_env({}, addr=consul.addr, token=consul.token, prefix=prefix, timeout=5.0)
        published = Published(store, gateway, gid, domain, host, dashboard, KVStore(master))
        published.await_reason("LoginRequired")
        wait_until(lambda: published.request().status == 303, 20, what=f"the dashboard through TLS: {published.logs()}")
        yield published
    finally:
        if gateway is not None:
            gateway.process.stop()
            stop_caddy_dir(gateway.caddy_dir)
        (published.dashboard if published is not None else dashboard).stop()  # a test may have replaced it
        acl.close(consul.addr, prefix)


class _Open(BaseHTTPRequestHandler):
    """Answers 200 to everything: what an open web page (or a dashboard of another make) looks like."""

    def do_GET(self) -> None:
        body = json.dumps({"open": True, "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def open_server() -> Iterator[int]:
    """A real HTTP server on loopback answering 200 without any login; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Open)
    thread = Thread(target=server.serve_forever, name="open-server", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
