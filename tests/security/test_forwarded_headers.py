"""Issue 24, item 6: the node Caddy keeps X-Forwarded-* only from the gateways, not from the whole tailnet.

A tailnet peer that is not a gateway (here: a network namespace at 100.64.<x>.2, inside Tailscale's
100.64.0.0/10) sends a request straight to a node's ingress with ``X-Forwarded-For: 203.0.113.66``.
Before, the node Caddy's default trusted all of 100.64.0.0/10, so the container saw the forged client
address (what allow-lists and audit logs read). Now its default trusts this host and the addresses the
gateways claimed (``gateways/<id>``) only: the container sees the peer's own address, while a gateway's
forwarded address still passes. A real Caddy 2.6 with the snippet the agent renders (its defaults).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meshop.agent.ingress.node_caddy import CaddyOptions, NodeCaddy
from meshop.caddy.render import Site, render_site
from meshop.consul.kv import Entry, Listing
from tests.support.caddy_server import CaddyServer
from tests.support.procs import free_port, wait_until

HOST = "xff.example.test"
FORGED = "203.0.113.66"

ASK = """
import http.client, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5)
conn.request("GET", "/", headers={"Host": sys.argv[3], "X-Forwarded-For": sys.argv[4]})
print(conn.getresponse().read().decode())
"""


class EchoForwarded(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (self.headers.get("X-Forwarded-For") or "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[tuple[str, str, str]]:
    """(namespace, host-side address, peer address): a tailnet peer in 100.64.<x>.0/30 of its own."""
    name = f"mxf{secrets.token_hex(3)}"
    subnet = f"100.64.{secrets.randbelow(250) + 1}.{4 * secrets.randbelow(60)}"
    base = subnet.rsplit(".", 1)[0]
    last = int(subnet.rsplit(".", 1)[1])
    host_addr, peer_addr = f"{base}.{last + 1}", f"{base}.{last + 2}"
    host_if, ns_if = f"v{name}h", f"v{name}n"
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", name],
        ["ip", "addr", "add", f"{host_addr}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "-n", name, "addr", "add", f"{peer_addr}/30", "dev", ns_if],
        ["ip", "-n", name, "link", "set", ns_if, "up"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True, timeout=30)
        yield name, host_addr, peer_addr
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)


def ask_from(namespace: str, address: str, port: int) -> str:
    """What the container saw as X-Forwarded-For, for a request sent from inside ``namespace``."""
    command = ["nsenter", f"--net=/var/run/netns/{namespace}", sys.executable, "-c", ASK]
    result = subprocess.run(
        [*command, address, str(port), HOST, FORGED], capture_output=True, text=True, timeout=30, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else f"error: {result.stderr[-300:]}"


def test_a_tailnet_peer_that_is_no_gateway_cannot_forge_the_client_address(
    peer: tuple[str, str, str], tmp_path: Path
) -> None:
    namespace, host_addr, peer_addr = peer
    backend = ThreadingHTTPServer(("127.0.0.1", free_port()), EchoForwarded)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    port = free_port()
    node = NodeCaddy(  # the agent's defaults for its node Caddy
        CaddyOptions(ingress_port=port, ingress_bind=(host_addr,), directory=tmp_path / "node", upstream_dns=None),
        "127.0.0.1",
        "127.0.0.1",
    )
    caddy = CaddyServer(tmp_path / "caddy")

    def load() -> None:
        site = Site(HOST, "/", (f"127.0.0.1:{backend.server_address[1]}",))
        proxy = node.ingress.settings.proxy
        text = render_site(site, scheme="http", bind=(host_addr,), tls=None, proxy=proxy, port=port)
        (caddy.sites / "xff.caddy").write_text(text)

    try:
        load()
        caddy.start()
        answer = lambda: (s := ask_from(namespace, host_addr, port)) and not s.startswith("error") and s  # noqa: E731
        seen = wait_until(answer, 20, interval=0.2, what="the route to answer the peer")
        assert FORGED not in seen, f"the container saw the forged client address: {seen!r}"
        assert seen == peer_addr

        # the same peer as a gateway (its claim in gateways/): its forwarded address now reaches the container
        claim = Entry("gateways/gw1", json.dumps({"address": peer_addr}).encode(), 1)
        assert node.follow_gateways(Listing(1, (claim,)))
        load()
        status, body = caddy.admin("POST", "/load", caddy.caddyfile.read_text().encode(), "text/caddyfile")
        assert status == 200, body
        wait_until(lambda: ask_from(namespace, host_addr, port) == f"{FORGED}, {peer_addr}", 10, 0.2, "a reload")
    finally:
        caddy.stop()
        backend.shutdown()
