"""``meshop gateway run`` against real Consul, a real Caddy it runs itself, and real containers.

Routes are written straight into KV here (as the controller would), so these tests pin the gateway's
own promises: TLS termination with the internal CA, upstreams that follow KV and agent health, and a
corrupted route that cannot take the others down. The full path through node Caddies and agents is
in tests/integration/routing/test_routing_e2e.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from http import client
from pathlib import Path

import pytest

from meshop.caddy.process import ManagedCaddy
from meshop.caddy.render import NO_SITE
from meshop.consul.services import CheckSpec, Registration, Services
from meshop.consul.store import KVStore
from meshop.gateway.config import EMPTYING_HOLD
from meshop.model import keys
from meshop.model.records import RouteRecord, Upstream, dumps
from tests.support import http
from tests.support.containers import run_httpd
from tests.support.meshop_proc import meshop_process
from tests.support.procs import Process, free_port, wait_until


class Gateway:
    def __init__(self, process: Process, caddy_dir: Path, https_port: int, http_port: int) -> None:
        self.process = process
        self.caddy_dir = caddy_dir
        self.https_port = https_port
        self.http_port = http_port

    @property
    def ca(self) -> str:
        return str(self.caddy_dir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt")

    def get(self, host: str, path: str = "/") -> tuple[int, str]:
        return http.get(self.https_port, host, path, tls_ca=self.ca, timeout=10)


@pytest.fixture
def gateway(store: KVStore, consul_server, tmp_path: Path) -> Iterator[Gateway]:
    caddy_dir = tmp_path / "gw"
    https_port, http_port = free_port(), free_port()
    args = [
        "gateway",
        "run",
        "--caddy-dir",
        str(caddy_dir),
        "--https-port",
        str(https_port),
        "--http-port",
        str(http_port),
        "--metrics-addr",
        "127.0.0.1:0",
        "--resync",
        "5",
    ]
    process = meshop_process(consul_server.addr, store.prefix, args, tmp_path / "gateway.log").start()
    gw = Gateway(process, caddy_dir, https_port, http_port)
    try:
        yield gw
    finally:
        process.stop()
        assert not process.alive()


@pytest.fixture
def two_backends(docker_client) -> Iterator[list[tuple[object, int]]]:
    backends = [run_httpd(docker_client, "gw-a", page="backend-a"), run_httpd(docker_client, "gw-b", page="backend-b")]
    try:
        yield backends
    finally:
        for container, _ in backends:
            container.remove(force=True)


def put_route(store: KVStore, host: str, *upstreams: Upstream, path: str = "/", health_path: str = "") -> None:
    record = RouteRecord(host, host.split(".")[0], path, upstreams, health_path)
    store.put(keys.route(host), dumps(record))


def answers(gw: Gateway, host: str, expected: str, path: str = "/"):
    def check() -> bool:
        status, body = gw.get(host, path)
        return status == 200 and expected in body

    return check


def test_https_through_the_gateway_with_the_internal_ca(gateway: Gateway, store: KVStore, two_backends) -> None:
    (_, port_a), _ = two_backends
    put_route(store, "whoami.localhost", Upstream("n1", "127.0.0.1", port_a, True))
    wait_until(answers(gateway, "whoami.localhost", "backend-a"), 20, what="the gateway to serve the route")
    status, body = gateway.get("whoami.localhost", "/cgi-bin/env")
    assert status == 200
    assert "HTTP_X_FORWARDED_FOR=127.0.0.1" in body
    assert "HTTP_X_FORWARDED_PROTO=https" in body
    assert "HTTP_HOST=whoami.localhost" in body
    # a host without a route is not served by anyone: no certificate over TLS, a 404 saying so over plain
    # HTTP (not Caddy's default empty 200, which reads as success); a routed host is sent to HTTPS
    with pytest.raises(OSError):
        gateway.get("nobody.localhost")
    assert http.get(gateway.http_port, "nobody.localhost") == (404, NO_SITE)
    conn = client.HTTPConnection("127.0.0.1", gateway.http_port, timeout=10)
    conn.request("GET", "/", headers={"Host": "whoami.localhost"})
    moved = conn.getresponse()
    assert (moved.status, moved.getheader("Location")) == (308, "https://whoami.localhost/"), moved.status
    conn.close()


def test_route_changes_in_kv_are_followed(gateway: Gateway, store: KVStore, two_backends) -> None:
    (_, port_a), (_, port_b) = two_backends
    put_route(store, "move.localhost", Upstream("n1", "127.0.0.1", port_a, True))
    wait_until(answers(gateway, "move.localhost", "backend-a"), 20, what="first upstream")
    changed = time.monotonic()
    put_route(store, "move.localhost", Upstream("n2", "127.0.0.1", port_b, True))
    wait_until(answers(gateway, "move.localhost", "backend-b"), 5, what="the gateway to follow the route")
    assert time.monotonic() - changed < 5
    # an upstream marked unhealthy leaves the pool
    put_route(store, "move.localhost", Upstream("n2", "127.0.0.1", port_b, False))
    wait_until(lambda: gateway.get("move.localhost")[0] == 503, 5, what="the unhealthy upstream to leave")


def test_an_upstream_whose_agent_is_critical_leaves_the_pool(gateway: Gateway, store: KVStore, two_backends) -> None:
    (_, port_a), (_, port_b) = two_backends
    services = Services(store.config, store.client)
    node = f"{store.prefix}-n1"
    check_id = f"meshop-agent-{node}:ttl"
    services.register(
        Registration(
            f"meshop-agent-{node}",
            f"meshop-agent-{node}",
            "127.0.0.1",
            1,
            meta={"node": node},
            checks=(CheckSpec(check_id, "agent alive", ttl="30s"),),
        )
    )
    try:
        services.ttl_pass(check_id)
        put_route(
            store,
            "ha.localhost",
            Upstream(node, "127.0.0.1", port_a, True),
            Upstream("other", "127.0.0.1", port_b, True),
        )
        wait_until(answers(gateway, "ha.localhost", "backend-a"), 20, what="node upstream served")
        services.ttl_fail(check_id, "agent gone")
        # from now on only backend-b may answer
        wait_until(
            lambda: all(answers(gateway, "ha.localhost", "backend-b")() for _ in range(4)),
            5,
            what="the lost node to leave the pool",
        )
    finally:
        services.deregister(f"meshop-agent-{node}")


def test_active_health_checks_keep_an_upstream_failing_its_health_path_out(
    gateway: Gateway, store: KVStore, two_backends
) -> None:
    """Both upstreams answer ``/``, only backend-a its health path: requests go to backend-a alone, until
    backend-b's health path answers too (Caddy checks every 5 s, with the route's Host header)."""
    (container_a, port_a), (container_b, port_b) = two_backends
    container_a.exec_run(["/bin/sh", "-c", "echo ok > /www/health.html"])
    put_route(
        store,
        "checked.localhost",
        Upstream("n1", "127.0.0.1", port_a, True),
        Upstream("n2", "127.0.0.1", port_b, True),
        health_path="/health.html",
    )
    wait_until(answers(gateway, "checked.localhost", "backend-a"), 20, what="the route served")
    wait_until(
        lambda: all(answers(gateway, "checked.localhost", "backend-a")() for _ in range(6)),
        15,
        what="the active check to take backend-b out",
    )
    container_b.exec_run(["/bin/sh", "-c", "echo ok > /www/health.html"])
    wait_until(answers(gateway, "checked.localhost", "backend-b"), 15, what="backend-b back once its check passes")


def test_a_corrupted_route_record_does_not_take_the_others_down(gateway: Gateway, store: KVStore, two_backends) -> None:
    (_, port_a), _ = two_backends
    put_route(store, "good.localhost", Upstream("n1", "127.0.0.1", port_a, True))
    wait_until(answers(gateway, "good.localhost", "backend-a"), 20, what="good route")
    store.put(keys.route("evil"), '{"host": "evil.localhost {\\n}\\nimport /etc", "service": "x", "upstreams": []}')
    store.put(keys.route("garbage"), "not json")
    put_route(store, "later.localhost", Upstream("n1", "127.0.0.1", port_a, True))
    wait_until(answers(gateway, "later.localhost", "backend-a"), 5, what="a later route despite the bad ones")
    assert gateway.get("good.localhost")[0] == 200


def test_routes_answering_empty_keep_serving_through_the_hold_then_stop(
    gateway: Gateway, store: KVStore, two_backends
) -> None:
    """A restarting Consul answers routes/ empty for a moment: the gateway must not black-hole on it."""
    (_, port_a), _ = two_backends
    put_route(store, "keep.localhost", Upstream("n1", "127.0.0.1", port_a, True))
    wait_until(answers(gateway, "keep.localhost", "backend-a"), 20, what="the gateway to serve the route")
    store.delete_tree(keys.ROUTES)
    emptied = time.monotonic()
    served = 0
    while time.monotonic() - emptied < EMPTYING_HOLD - 1.0:  # a request loop over most of the hold
        assert answers(gateway, "keep.localhost", "backend-a")(), "the host was dropped during the hold"
        served += 1
    assert served > 0

    def dropped() -> bool:
        try:
            gateway.get("keep.localhost")
        except OSError:
            return True
        return False

    wait_until(dropped, EMPTYING_HOLD + 15, what="the host dropped once the empty answer persisted")


def loads(gw: Gateway) -> int:
    """Configs the gateway loaded into its Caddy so far (one log line each)."""
    return gw.process.log_path.read_text(errors="replace").count("gateway config loaded")


def test_upstream_changes_reach_caddy_through_dns_without_a_reload_and_cost_no_request(
    gateway: Gateway, store: KVStore, two_backends
) -> None:
    """Caddy 2.6.2 resets a few connections per 100 reloads: switching a route's upstream back and forth
    under a request loop (every GET sent once) must load no config and fail no request."""
    (_, port_a), (_, port_b) = two_backends
    a, b = Upstream("n1", "127.0.0.1", port_a, True), Upstream("n2", "127.0.0.1", port_b, True)
    put_route(store, "flip.localhost", a)
    wait_until(answers(gateway, "flip.localhost", "backend-a"), 20, what="the first upstream")
    before = loads(gateway)
    failures: list[str] = []
    for i in range(6):
        upstream, page = (b, "backend-b") if i % 2 == 0 else (a, "backend-a")
        put_route(store, "flip.localhost", upstream)
        deadline, seen = time.monotonic() + 10, False
        while not seen and time.monotonic() < deadline:
            try:
                status, body = gateway.get("flip.localhost")
            except OSError as exc:
                failures.append(repr(exc))
                continue
            if status != 200:
                failures.append(f"HTTP {status}")
            seen = page in body
        assert seen, f"switch {i}: {page} not served within 10 s"
    assert failures == []
    assert loads(gateway) == before, "an upstream change reloaded Caddy"


def test_caddy_keeps_serving_the_loaded_upstreams_when_the_gateway_process_dies(
    gateway: Gateway, store: KVStore, two_backends
) -> None:
    """Its DNS responder goes with the gateway process: Caddy then falls back to the static upstreams of
    the config it serves, instead of failing every request."""
    (_, port_a), _ = two_backends
    put_route(store, "orphan.localhost", Upstream("n1", "127.0.0.1", port_a, True))
    wait_until(answers(gateway, "orphan.localhost", "backend-a"), 20, what="the route served")
    gateway.process.kill()
    caddy_log = gateway.caddy_dir / "caddy.log"
    try:
        served = 0
        # every request succeeds, through the moment Caddy's cached SRV answer expires and its lookups fail
        while "falling back to static upstreams" not in caddy_log.read_text(errors="replace") or served < 5:
            assert answers(gateway, "orphan.localhost", "backend-a")(), "a request failed without the gateway"
            served += 1
            assert served < 2000, "Caddy never looked the upstreams up again"
    finally:
        ManagedCaddy(gateway.caddy_dir, "").stop_stale()
