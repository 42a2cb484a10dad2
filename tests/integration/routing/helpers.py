"""Real pieces for the routing tests: agents with a node Caddy (process or in-process), the gateway
process, service documents, and a request loop that records every failure.

Every process is started by PID and stopped by PID; Caddy folders are short paths under /tmp (unix
socket paths are limited to 108 bytes) and removed at teardown, with any Caddy a killed agent left
behind stopped by the PID in its ``caddy.pid`` (only when it runs that folder's Caddyfile).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshop.agent.daemon import AgentDaemon, DaemonOptions
from meshop.agent.ingress.node_caddy import CaddyOptions
from meshop.agent.reconciler import AgentSettings
from meshop.caddy.process import ManagedCaddy
from meshop.consul.config import ConsulConfig
from meshop.consul.services import Services
from meshop.consul.store import KVStore
from meshop.model import keys
from meshop.model.records import Observed, RouteRecord, loads_json
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import agent_process
from tests.support.meshop_proc import meshop_process
from tests.support.procs import Process, free_port, wait_until


def short_dir(tag: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"mr{tag}-", dir="/tmp"))


def httpd_spec(**extra: Any) -> dict[str, Any]:
    """busybox httpd on 8080 with a fast HTTP health check; /cgi-bin/env shows which container answered."""
    spec: dict[str, Any] = {
        "image": TEST_IMAGE,
        "command": ["/bin/httpd"],
        "args": ["-f", "-p", "8080", "-h", "/www"],
        "ports": [{"name": "http", "container": 8080}],
        "health": {"http": {"path": "/", "port": "http"}, "interval": "1s", "timeout": "1s"},
    }
    spec.update(extra)
    return spec


def service_doc(name: str, spec: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "meshop.io/v1alpha1", "kind": "Service", "metadata": {"name": name}, "spec": spec})


def observed(store: KVStore, node: str, service: str) -> Observed | None:
    entry = store.get(keys.observed(node, service))
    return Observed.from_dict(loads_json(entry.value)) if entry else None


def route_of(store: KVStore, host: str) -> RouteRecord | None:
    entry = store.get(keys.route(host))
    return RouteRecord.from_dict(loads_json(entry.value)) if entry else None


def env_of(body: str) -> dict[str, str]:
    """The CGI environment /cgi-bin/env printed."""
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def cleanup_node(docker_client: Any, store: KVStore, node: str) -> None:
    """Remove exactly what belongs to ``node``: its labelled containers and its Consul registrations."""
    for container in docker_client.containers.list(all=True, filters={"label": [f"meshop.node={node}"]}):
        with contextlib.suppress(Exception):
            container.remove(force=True, v=True)
    services = Services(store.config, store.client)
    with contextlib.suppress(Exception):
        for sid, body in services.local().items():
            if (body.get("Meta") or {}).get("node") == node:
                services.deregister(sid)


def stop_caddy_dir(directory: Path) -> None:
    """Stop a Caddy left running in ``directory`` (by the PID it recorded) and remove the folder."""
    ManagedCaddy(directory, "").stop_stale()
    shutil.rmtree(directory, ignore_errors=True)


@dataclass
class NodeAgent:
    """``meshop agent run --caddy-dir`` as a real process for one node."""

    name: str
    process: Process
    caddy_dir: Path
    ingress_port: int

    def get(self, host: str, path: str = "/") -> tuple[int, str]:
        """A request straight to the node's Caddy, as a client would when DNS points at the node."""
        return fetch(self.ingress_port, host, path, timeout=10)


def start_agent_process(consul_addr: str, prefix: str, name: str, workdir: Path) -> NodeAgent:
    """``meshop agent run`` with its own node Caddy; state and log in ``workdir/<name>``."""
    caddy_dir = short_dir("n")
    port = free_port()
    caddy = ("--caddy-dir", str(caddy_dir), "--ingress-port", str(port))
    process = agent_process(name, consul_addr, prefix, workdir / name, *caddy).start()
    return NodeAgent(name, process, caddy_dir, port)


@dataclass
class Gateway:
    process: Process
    caddy_dir: Path
    https_port: int

    @property
    def ca(self) -> str:
        return str(self.caddy_dir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt")

    def get(self, host: str, path: str = "/", timeout: float = 10.0) -> tuple[int, str]:
        return fetch(self.https_port, host, path, tls_ca=self.ca, timeout=timeout)

    def loads(self) -> int:
        """Configs the gateway loaded into its Caddy so far (its log says so for each one)."""
        return self.process.log_path.read_text(errors="replace").count("gateway config loaded")


def start_gateway(consul_addr: str, prefix: str, workdir: Path, *extra: str, log_name: str = "gateway.log") -> Gateway:
    caddy_dir = short_dir("g")
    https_port, http_port = free_port(), free_port()
    args = ["gateway", "run", "--caddy-dir", str(caddy_dir), "--https-port", str(https_port)]
    args += ["--http-port", str(http_port), "--metrics-addr", "127.0.0.1:0", "--resync", "5", *extra]
    process = meshop_process(consul_addr, prefix, args, workdir / log_name).start()
    return Gateway(process, caddy_dir, https_port)


@dataclass
class InProcessAgent:
    """An agent with a node Caddy in this process (faster to start; its state is inspectable)."""

    daemon: AgentDaemon
    thread: threading.Thread
    caddy: CaddyOptions

    def get(self, host: str, path: str = "/", timeout: float = 10.0) -> tuple[int, str]:
        return fetch(self.caddy.ingress_port, host, path, timeout=timeout)

    def run_pass(self, timeout: float = 10.0) -> None:
        loop = self.daemon.loop
        begun = loop.begun  # a pass already in flight may have read the state before the caller changed it
        self.daemon.wakeup.notify("test")
        wait_until(lambda: loop.ended_begun > begun, timeout, what="a reconcile pass begun after the wake-up")

    def stop(self) -> None:
        self.daemon.stop()
        self.thread.join(timeout=30)
        self.daemon.shutdown()


def start_in_process_agent(
    config: ConsulConfig, node: str, workdir: Path, caddy: CaddyOptions, *, drain: float = 0.3, resync: float = 30.0
) -> InProcessAgent:
    settings = AgentSettings(node=node, advertise_addr="127.0.0.1", drain=drain, stop_grace=1.0)
    options = DaemonOptions(
        settings=settings,
        consul=config,
        state_dir=workdir / f"state-{node}",
        metrics_addr="127.0.0.1:0",
        resync=resync,
        caddy=caddy,
    )
    daemon = AgentDaemon(options).start()
    thread = threading.Thread(target=daemon.run, name=f"agent-{node}", daemon=True)
    thread.start()
    wait_until(lambda: daemon.loop.passes > 0, 10, what="the agent's first pass")
    return InProcessAgent(daemon, thread, caddy)


class NoResponse(OSError):
    """The connection broke before any response arrived: a client may send a GET again (RFC 9110 9.2.2)."""


def fetch(
    port: int, host: str, path: str = "/", *, tls_ca: str | None = None, timeout: float = 15.0
) -> tuple[int, str]:
    """GET like ``tests.support.http.get``, telling a connection lost before any answer (``NoResponse``)
    from everything else (an answer that is not 200, a timeout, a connection cut in mid-answer)."""
    if tls_ca:
        context = ssl.create_default_context(cafile=tls_ca)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn._create_connection = lambda _a, t=timeout, s=None: socket.create_connection(("127.0.0.1", port), t, s)  # type: ignore[attr-defined]
    try:
        try:
            conn.request("GET", path, headers={"Host": host})
            response = conn.getresponse()
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ssl.SSLError) as exc:
            raise NoResponse(repr(exc)) from exc
        return response.status, response.read().decode("utf-8", errors="replace")
    finally:
        conn.close()


@dataclass
class RequestLoop:
    """GETs one after the other in a background thread until stopped (bounded); every GET is sent once and
    everything that is not a 200 answer is a failure, a connection broken before any answer included.
    Neither the gateway nor a node's Caddy reloads for a change of upstreams (they come from an upstream
    DNS), so nothing meshop routes makes Caddy 2.6.2 reset a connection (docs/routing.md)."""

    fetch: Callable[[], tuple[int, str]]
    limit: int = 20000
    results: list[tuple[float, int, str]] = field(default_factory=list)  # (end time, status, answering HOSTNAME)
    failures: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, what)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RequestLoop:
        self._thread = threading.Thread(target=self._run, name="requests", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.results) + len(self.failures) < self.limit:
            started = time.monotonic()
            try:
                status, body = self.fetch()
            except OSError as exc:
                self.failures.append((started, time.monotonic(), repr(exc)))
                continue
            if status != 200:
                self.failures.append((started, time.monotonic(), f"HTTP {status}: {body[:200]}"))
                continue
            self.results.append((time.monotonic(), status, env_of(body).get("HOSTNAME", "")))

    def served_by(self, hostname: str, since: float = 0.0) -> bool:
        return any(h == hostname and t >= since for t, _, h in list(self.results))

    def wait_more(self, count: int, timeout: float = 10.0) -> None:
        target = len(self.results) + count
        wait_until(lambda: len(self.results) >= target, timeout, what=f"{count} more answered requests")

    def report(self) -> str:
        total = len(self.results) + len(self.failures)
        return f"{len(self.failures)} of {total} requests failed: {self.failures[:5]}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
