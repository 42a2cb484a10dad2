"""Gateways share their CA and certificates through Consul KV (gateway token only): a standby started
later serves a certificate that clients trusting the first gateway's CA accept, before any traffic."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meshop.consul.store import KVStore
from meshop.errors import ConsulAccessDenied
from meshop.model import keys
from meshop.model.records import RouteRecord, Upstream, dumps
from tests.support import http
from tests.support.meshop_proc import meshop_process
from tests.support.procs import Process, free_port, kill_pidfile, wait_until

pytestmark = pytest.mark.slow
HOST = "web.example.test"
GATEWAY = """apiVersion: meshop.io/v1alpha1
kind: Gateway
metadata: {name: prod}
spec:
  domains: [example.test]
  tls: {mode: internal}
"""


def start(consul_addr: str, prefix: str, tmp_path: Path, gid: str, share: bool = True) -> tuple[Process, int, Path]:
    port = free_port()
    args = ["gateway", "run", "--caddy-dir", str(tmp_path / gid), "--id", gid, "--https-port", str(port)]
    args += ["--http-port", str(free_port()), "--metrics-addr", "127.0.0.1:0", "--certs-interval", "1"]
    args += [] if share else ["--no-share-certs"]
    process = meshop_process(consul_addr, prefix, args, tmp_path / f"{gid}.log").start()
    return process, port, tmp_path / gid / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"


@pytest.fixture
def backend() -> Iterator[int]:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("share", [True, False], ids=["shared", "not-shared"])
def test_a_standby_serves_certificates_from_the_first_gateways_ca(
    store: KVStore, consul_server, prefix: str, tmp_path: Path, backend: int, role_config, share: bool
) -> None:
    store.put(keys.DESIRED_GATEWAY, GATEWAY)
    store.put(keys.route(HOST), dumps(RouteRecord(HOST, "web", "/", (Upstream("n1", "127.0.0.1", backend, True),))))
    started: list[tuple[Process, str]] = []
    try:
        g1, port1, ca1 = start(consul_server.addr, prefix, tmp_path, "g1", share)
        started.append((g1, "g1"))
        wait_until(lambda: http.get(port1, HOST, tls_ca=str(ca1)) == (200, "hello"), 30, what="g1 serves HTTPS")
        if share:
            folder = f"{keys.SECRETS}meshop-gateway/certs/"
            wait_until(lambda: store.get(folder + "pki/authorities/local/root.crt"), 20, what="g1's CA in KV")
            wait_until(lambda: any("certificates/" in k for k in store.keys(folder)), 20, what="g1's cert in KV")
            with pytest.raises(ConsulAccessDenied):  # the controller's token may not read the key material
                KVStore(role_config("controller")).get(folder + "pki/authorities/local/root.key")
            key = wait_until(lambda: store.get(folder + "pki/authorities/local/root.key"), 20, what="g1's CA key")
            body = json.loads(key.value)  # type: ignore[attr-defined]
            assert set(body) == {"mtime", "sha256", "data"}
        g2, port2, _ = start(consul_server.addr, prefix, tmp_path, "g2", share)
        started.append((g2, "g2"))
        if share:
            wait_until(
                lambda: http.get(port2, HOST, tls_ca=str(ca1)) == (200, "hello"), 30, what="g2 trusted via g1's CA"
            )
        else:  # before this change: g2 has a CA of its own, which g1's clients do not trust
            wait_until(lambda: (tmp_path / "g2" / "data" / "caddy" / "pki").exists(), 30, what="g2's own CA")
            with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
                wait_until(lambda: http.get(port2, HOST, tls_ca=str(ca1)), 2, what="g2 with g1's CA")
    finally:
        for process, gid in started:
            process.stop()
            kill_pidfile(tmp_path / gid / "caddy.pid")
