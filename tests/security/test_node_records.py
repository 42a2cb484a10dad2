"""A compromised node writes its own ``nodes/<n>`` record: two attacks through it, both refused, and the
honest node's route keeps serving. On main before issue 11 both worked (the injected site loaded into
the gateway's Caddy and answered; the public route proxied to Consul's HTTP API on the gateway host).
"""

from __future__ import annotations

import json
import secrets

from meshop.model import keys
from meshop.model.records import RouteRecord, loads_json
from tests.security.fleet import HONEST_NAME, LOOPBACK_NAME, Fleet, gateway_get, join
from tests.support.procs import wait_until


def web_document(name: str, host: str) -> str:
    return json.dumps(
        {
            "apiVersion": "meshop.io/v1alpha1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "image": "busybox:1",
                "replicas": 2,
                "ports": [{"name": "http", "container": 80}],
                "route": {"host": host, "port": "http"},
            },
        }
    )


def run_attack(fleet: Fleet, evil_address: str, evil_port: int, honest_address: str = ""):  # type: ignore[no-untyped-def]
    """Service ``name`` on an honest node and on the attacker's; both report Ready. Returns the route
    host and a cleanup function."""
    tag = secrets.token_hex(3)
    name, host = f"web{tag}", f"web{tag}.sec.test"
    honest = join(fleet.store, f"honest{tag}", honest_address or fleet.honest.address, fleet.honest.port)
    evil = join(fleet.store, f"evil{tag}", evil_address, evil_port)
    fleet.store.put(keys.desired_service(name), web_document(name, host))
    for node in (honest, evil):
        wait_until(lambda n=node: n.assignment(name), 20, what=f"an assignment of {name} on {node.name}")
        node.report(name)

    def cleanup() -> None:
        fleet.store.delete(keys.desired_service(name))
        for node in (honest, evil):
            node.close()
            fleet.store.delete(keys.node(node.name))

    return name, host, evil, cleanup


def route_of(fleet: Fleet, host: str) -> RouteRecord | None:
    entry = fleet.store.get(keys.route(host))
    return RouteRecord.from_dict(loads_json(entry.value)) if entry else None


def test_a_node_record_cannot_point_a_public_route_at_the_gateway_hosts_loopback(fleet: Fleet) -> None:
    consul_port = int(fleet.consul.addr.rsplit(":", 1)[1])
    name, host, _evil, cleanup = run_attack(fleet, "127.0.0.1", consul_port)
    try:
        wait_until(lambda: gateway_get(fleet.http_port, host) == (200, "honest\n"), 30, what="the honest route")
        wait_until(lambda: route_of(fleet, host) and route_of(fleet, host).upstreams, 20, what="the route")  # type: ignore[union-attr]
        answers = [gateway_get(fleet.http_port, host, "/v1/status/leader") for _ in range(8)]
        assert not any('"127.0.0.1:' in body for _, body in answers), answers  # never Consul's API
        route = route_of(fleet, host)
        assert route is not None and route.service == name
        assert [u.address for u in route.upstreams] == [fleet.honest.address]  # the controller left evil out
        assert all(gateway_get(fleet.http_port, host) == (200, "honest\n") for _ in range(4))
    finally:
        cleanup()


def test_a_node_address_cannot_inject_a_site_into_the_gateway_caddyfile(fleet: Fleet) -> None:
    port = fleet.http_port
    injection = (
        f"[fe80::1%lo]:9 {{\n}}\n}}\n}}\nevil.sec.test:{port} {{\n\tbind 127.0.0.1\n\trespond pwned\n}}\n"
        f"zz.sec.test:{port} {{\n\tbind 127.0.0.1\n\thandle {{\n\t\treverse_proxy [fe80::1"
    )
    _name, host, _evil, cleanup = run_attack(fleet, injection, 80)
    try:
        wait_until(lambda: gateway_get(port, host) == (200, "honest\n"), 30, what="the honest route")
        wait_until(lambda: route_of(fleet, host) and route_of(fleet, host).upstreams, 20, what="the route")  # type: ignore[union-attr]
        status, body = gateway_get(port, "evil.sec.test")
        assert "pwned" not in body, (status, body)  # the injected site is not served
        route = route_of(fleet, host)
        assert route is not None and all("\n" not in u.address for u in route.upstreams)
        assert gateway_get(port, host) == (200, "honest\n")
    finally:
        cleanup()


def test_a_node_hostname_resolving_to_loopback_is_never_dialled_by_the_gateway(fleet: Fleet) -> None:
    """The record's address is a name (accepted: it is not ``localhost``) that resolves to 127.0.0.1 for
    the gateway. Before, the gateway handed the name to Caddy, which resolved it and proxied the public
    route to Consul's API on the gateway host. Now the gateway resolves it, refuses 127.0.0.1 and serves
    the honest node, itself named by a hostname that resolves to its (non-loopback) address."""
    consul_port = int(fleet.consul.addr.rsplit(":", 1)[1])
    name, host, _evil, cleanup = run_attack(fleet, LOOPBACK_NAME, consul_port, honest_address=HONEST_NAME)
    try:
        wait_until(lambda: route_of(fleet, host) and len(route_of(fleet, host).upstreams) == 2, 20, what="the route")  # type: ignore[union-attr]
        route = route_of(fleet, host)
        assert route is not None and route.service == name
        assert sorted(u.address for u in route.upstreams) == sorted([HONEST_NAME, LOOPBACK_NAME])  # names pass on
        wait_until(lambda: gateway_get(fleet.http_port, host) == (200, "honest\n"), 30, what="the honest route")
        answers = [gateway_get(fleet.http_port, host, "/v1/status/leader") for _ in range(8)]
        assert not any('"127.0.0.1:' in body for _, body in answers), answers  # never Consul's API
        assert all(gateway_get(fleet.http_port, host) == (200, "honest\n") for _ in range(4))
        log = fleet.gateway.log_path.read_text(encoding="utf-8", errors="replace")
        assert f"{LOOPBACK_NAME!r} resolves to 127.0.0.1: 127.0.0.1 is a loopback address" in log
    finally:
        cleanup()
