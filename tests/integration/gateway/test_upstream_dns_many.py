"""A site with more upstreams than one UDP answer holds, served through the gateway's upstream DNS to a
real Caddy 2.6. Before: the SRV answer for 40 upstreams (~2 KB) was sent whole, Go's resolver in Caddy
read 1232 bytes of it ("cannot unmarshal DNS message") and the site fell back to its pinned static
upstreams: here a dead one, so every request failed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meshop.caddy.dns_wire import site_name
from meshop.caddy.render import DynamicUpstreams, ProxyOptions, Site, render_site
from meshop.caddy.upstream_dns import UpstreamDNS
from tests.support.caddy_server import CaddyServer
from tests.support.http import get
from tests.support.procs import free_port, wait_until

UPSTREAMS = 40
HOST = "many.example.test"


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.server_address[0].encode()  # type: ignore[union-attr]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def backends() -> Iterator[list[tuple[str, int]]]:
    port = free_port()
    servers = [ThreadingHTTPServer((f"127.0.0.{k}", port), Hello) for k in range(1, UPSTREAMS + 1)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [(str(s.server_address[0]), port) for s in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize("listen", ["unix", "127.0.0.1:0"])
def test_forty_upstreams_are_served_in_turn_through_the_upstream_dns(backends, listen: str, tmp_path: Path) -> None:
    dns = UpstreamDNS(listen).start()
    caddy = CaddyServer(tmp_path / "caddy")
    try:
        name = site_name(HOST)
        dns.publish({name: tuple(backends)})
        port = free_port()
        site = Site(HOST, "/", ("127.0.0.1:1",), dynamic=DynamicUpstreams(name, dns.address, "1s"))
        text = render_site(site, scheme="http", bind=("127.0.0.1",), tls=None, proxy=ProxyOptions(), port=port)
        (caddy.sites / "many.caddy").write_text(text)
        caddy.start()
        seen: set[str] = set()

        def served() -> bool:
            status, body = get(port, HOST)
            assert status == 200, (status, body[:200], caddy.process.log_tail() if caddy.process else "")
            seen.add(body)
            return len(seen) > 20  # the answer rotates: more upstreams than one answer holds get traffic

        wait_until(served, 30, interval=0.2, what="requests spread over more than 20 of the 40 upstreams")
    finally:
        caddy.stop()
        dns.stop()
