"""The dashboard through the gateway's TLS: how fast a Gateway document change is served, and what the
TLS hop costs a page.

    .venv/bin/python benchmarks/dashboard_gateway.py [--repeat 5] [--requests 50]

Starts its own Consul and ``meshop gateway run`` (its own Caddy, internal CA), stopped by PID at the end,
and a dashboard in this process with ``--public-host`` and a password; then prints:

* publish: from writing ``desired/gateway`` that points the dashboard host at the dashboard until
  ``https://<host>/`` answers its login redirect (the gateway's watch, its anonymous check of the
  dashboard, a Caddy reload);
* unpublish: from pointing it at a server that answers without a login until the host answers the
  fixed 503 (the same path: the verdict is ``NoLogin``);
* a signed-in ``GET /fragment/overview`` straight from the dashboard (plain HTTP on loopback) and through
  the gateway (a new TLS connection each, as a phone opening the page would make).

No peer is measured: Portainer serves its own TLS and has no gateway in front to compare with.
"""

from __future__ import annotations

import argparse
import http.client
import secrets
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.consul_server import ConsulServer  # noqa: E402
from tests.support.published_dashboard import Published, open_server, published_dashboard  # noqa: E402


def ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:7.1f} ms   max {max(samples) * 1e3:7.1f} ms"


def until(check: object, timeout: float = 60.0) -> float:
    """Seconds until ``check()`` is true (polled every 20 ms)."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise TimeoutError("timed out")
        time.sleep(0.02)
    return time.monotonic() - started


def status(published: Published) -> int:
    try:
        return published.request("/").status
    except OSError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mdg-") as tmp:
        consul = ConsulServer(Path(tmp) / "consul").start()
        try:
            with published_dashboard(consul, f"b-{secrets.token_hex(4)}", Path(tmp)) as published:
                measure(published, args.repeat, args.requests)
        finally:
            consul.stop()


def measure(published: Published, repeat: int, requests: int) -> None:
    dashboard = f"127.0.0.1:{published.dashboard.port}"
    publish, unpublish = [], []
    with open_server() as port:
        for _ in range(repeat):
            started = time.monotonic()
            published.point_at(f"127.0.0.1:{port}")
            until(lambda: status(published) == 503)
            unpublish.append(time.monotonic() - started)
            started = time.monotonic()
            published.point_at(dashboard)
            until(lambda: status(published) == 303)
            publish.append(time.monotonic() - started)
    signed = published.sign_in()
    cookie = signed.headers["Set-Cookie"].split(";")[0]
    direct, through = [], []
    tls = ssl.create_default_context(cafile=published.ca)  # made once: loading the CA is the client's cost
    host = f"{published.host}:{published.gateway.https_port}"

    def dial(_address: object, timeout: float = 10, source: object = None) -> socket.socket:
        return socket.create_connection(("127.0.0.1", published.gateway.https_port), timeout)

    for _ in range(requests):
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", published.dashboard.port, timeout=10)
        conn.request("GET", "/fragment/overview", headers={"Host": published.host, "Cookie": cookie})
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 200, response.status
        direct.append(time.monotonic() - started)
        started = time.monotonic()
        conn = http.client.HTTPSConnection(published.host, published.gateway.https_port, context=tls, timeout=10)
        conn._create_connection = dial  # type: ignore[attr-defined]
        conn.request("GET", "/fragment/overview", headers={"Host": host, "Cookie": cookie})
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 200, response.status
        through.append(time.monotonic() - started)
    print(f"publish   (document -> login redirect over TLS), {repeat}x: {ms(publish)}")
    print(f"unpublish (document -> fixed 503),               {repeat}x: {ms(unpublish)}")
    print(f"GET /fragment/overview direct (HTTP, loopback), {requests}x: {ms(direct)}")
    print(f"GET /fragment/overview through the gateway (new TLS connection each), {requests}x: {ms(through)}")


if __name__ == "__main__":
    main()
