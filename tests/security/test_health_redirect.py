"""A container's HTTP health endpoint cannot make Consul (or the agent) fetch another URL by redirect.

Attack: a replica's health endpoint answers ``302 Location: http://127.0.0.1:<port>/...``. Consul 1.8
follows redirects in HTTP checks, so the Consul agent on the node fetched whatever the container named,
from the node's own loopback (its metrics ports, Caddy's admin API, Consul's own API), and showed the
answer in the check's output to anyone who can read health. Now Consul gets a TCP check and a TTL check
fed by the agent's own probe, which never follows redirects; the redirect target is never fetched.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from meshop.consul.store import KVStore
from tests.conftest import TEST_IMAGE
from tests.integration.agent.helpers import AgentFactory, Engine, assign, consul_get, observed, passing
from tests.support.procs import wait_until

INTERVAL = 1.0  # the health check's interval in seconds


@pytest.fixture
def canary() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback standing for something only the node should reach; records every hit."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"internal secrets\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/internal", hits
    finally:
        server.shutdown()
        server.server_close()


def redirector(target: str) -> dict[str, Any]:
    """busybox httpd whose /cgi-bin/r answers 302 to ``target``, health-checked on that path."""
    script = (
        "mkdir -p /tmp/w/cgi-bin && "
        "echo '#!/bin/sh' > /tmp/w/cgi-bin/r && "
        f"echo 'printf \"Status: 302 Found\\r\\nLocation: {target}\\r\\n\\r\\n\"' >> /tmp/w/cgi-bin/r && "
        "/bin/busybox chmod +x /tmp/w/cgi-bin/r && exec /bin/httpd -f -p 8080 -h /tmp/w"
    )
    return {
        "image": TEST_IMAGE,
        "command": ["/bin/sh"],
        "args": ["-c", script],
        "ports": [{"name": "http", "container": 8080}],
        "health": {"http": {"path": "/cgi-bin/r", "port": "http"}, "interval": f"{INTERVAL:g}s", "timeout": "1s"},
    }


def test_a_health_endpoint_redirecting_elsewhere_is_never_followed(
    start_agent: AgentFactory,
    store: KVStore,
    engine: Engine,
    node: str,
    consul_server: Any,
    canary: tuple[str, list[str]],
) -> None:
    target, hits = canary
    start_agent()
    assign(store, node, "redir", redirector(target))
    wait_until(lambda: engine.running("redir"), 15, what="the container")
    # the redirect is real: a client that follows it lands on the canary
    container = engine.running("redir")[0]
    port = int(container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
    wait_until(lambda: b"302" in _raw_get(port, "/cgi-bin/r"), 10, what="the container's 302")
    assert target.encode() in _raw_get(port, "/cgi-bin/r")
    # the replica is healthy (a 3xx answer is, as before) and registered passing in Consul
    wait_until(lambda: (o := observed(store, node, "redir")) and o.ready == 1, 15, what="ready")
    wait_until(lambda: passing(consul_server.addr, "redir", node), 15, what="passing in Consul")
    time.sleep(3 * INTERVAL)  # proving a negative: three more check intervals in which Consul could follow
    assert hits == [], f"the redirect target was fetched: {hits}"
    checks = consul_get(consul_server.addr, "/v1/agent/checks") or {}
    mine = [c for c in checks.values() if c.get("ServiceName") == "redir" and node in c.get("ServiceID", "")]
    assert mine and all(c.get("Type") in ("ttl", "tcp") for c in mine), mine
    assert all("internal secrets" not in (c.get("Output") or "") for c in mine)


def _raw_get(port: int, path: str) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)
