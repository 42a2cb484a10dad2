"""Issue 24: a node must not add scrape targets in another node's (or daemon's) name.

Before, every daemon registered its ``/metrics`` as the one shared Consul service ``meshop-metrics``,
which every role's token could write (Consul 1.8 scopes a service right by name only), and Prometheus took
component and node from the registration's meta: with its own agent token a node registered an endpoint
of its choice labelled as another node's agent, and Prometheus scraped it. Now each daemon has a name only
its role may register — ``meshop-metrics-controller``, ``meshop-metrics-gateway``,
``meshop-metrics-agent-<node>`` (an agent's token: its own node's only) — and the shipped Prometheus
config keeps only those names and takes component and node from the name, not from the meta.

Real default-deny Consul, real Prometheus (Debian 11's 2.24, with Consul discovery) on the shipped
``charts/monitoring/prometheus.yml`` with the prometheus role's token; the forged registrations of the
scrape test are made with the master token, as if ACLs were misconfigured.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meshop.consul.client import make_client
from meshop.consul.services import Registration, Services, metrics_registration
from meshop.errors import ConsulAccessDenied
from meshop.model.acl import metrics_service
from tests.integration.monitoring.stack import prometheus_config
from tests.support import acl
from tests.support.consul_server import ConsulServer
from tests.support.procs import wait_until
from tests.support.prometheus_server import PrometheusServer


def denied(call: Callable[[], object]) -> None:
    with pytest.raises(ConsulAccessDenied):
        call()


def test_a_node_cannot_register_a_metrics_endpoint_in_another_nodes_name(
    consul_server: ConsulServer, prefix: str
) -> None:
    n1, n2 = f"{prefix}-n1", f"{prefix}-n2"
    config = acl.config_for(consul_server.addr, prefix, "agent", n1)
    services = Services(config, make_client(config))
    lie = {"component": "agent", "instance": n2, "node": n2}
    # before: accepted, and Prometheus scraped 203.0.113.66 as n2's agent
    denied(lambda: services.register(Registration(f"x-{n2}", "meshop-metrics", "203.0.113.66", 9464, meta=lie)))
    for name in (metrics_service("agent", n2), metrics_service("controller"), metrics_service("gateway")):
        denied(lambda name=name: services.register(Registration(f"x-{name}", name, "203.0.113.66", 9464, meta=lie)))
    own = metrics_registration("agent", n1, "127.0.0.1:9464", n1)
    assert own.name == f"meshop-metrics-agent-{n1}"
    services.register(own)  # its own name, bound to its node
    services.deregister(own.service_id)


def test_an_entry_left_under_the_old_shared_name_does_not_keep_the_new_one_out(
    consul_server: ConsulServer, consul_config, prefix: str
) -> None:
    """Upgrading: an old agent stopped after ``acl init`` took the shared name away cannot deregister its
    ``meshop-metrics`` entry; Consul lets no one replace an entry without write on its name, so the new
    registration must not reuse its id (before the new ids: refused, and the node was never scraped)."""
    n1 = f"{prefix}-n1"
    master = Services(consul_config, make_client(consul_config))
    old = Registration(f"meshop-metrics-agent-{n1}", "meshop-metrics", "127.0.0.1", 9464, meta={"node": n1})
    master.register(old)
    config = acl.config_for(consul_server.addr, prefix, "agent", n1)
    services = Services(config, make_client(config))
    try:
        own = metrics_registration("agent", n1, "127.0.0.1:9464", n1)
        services.register(own)
        services.deregister(own.service_id)
    finally:
        master.deregister(old.service_id)


class Canary:
    """An HTTP /metrics endpoint that counts who scraped it."""

    def __init__(self) -> None:
        self.hits = 0
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canary.hits += 1
                body = b"canary_up 1\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def canaries() -> Iterator[dict[str, Canary]]:
    made = {name: Canary() for name in ("own", "shared", "unknown")}
    try:
        yield made
    finally:
        for canary in made.values():
            canary.server.shutdown()
            canary.server.server_close()


def test_prometheus_scrapes_no_forged_metrics_name_and_labels_a_target_by_its_name(
    consul_server: ConsulServer, consul_config, prefix: str, canaries: dict[str, Canary], tmp_path: Path
) -> None:
    n1, n2 = f"{prefix}-n1", f"{prefix}-n2"
    master = Services(consul_config, make_client(consul_config))
    lie = {"component": "agent", "instance": n2, "node": n2}
    registrations = [
        # n1's own name, but its meta claims n2: Prometheus must call it n1
        Registration(f"{prefix}-own", metrics_service("agent", n1), "127.0.0.1", canaries["own"].port, meta=lie),
        # the old shared name, and a look-alike under the readable prefix: neither is scraped
        Registration(f"{prefix}-shared", "meshop-metrics", "127.0.0.1", canaries["shared"].port, meta=lie),
        Registration(f"{prefix}-unknown", "meshop-metrics-evil", "127.0.0.1", canaries["unknown"].port, meta=lie),
    ]
    for registration in registrations:
        master.register(registration)
    prometheus = PrometheusServer(tmp_path / "prometheus", prometheus_config(consul_server.addr, prefix)).start()
    try:
        wait_until(
            lambda: canaries["own"].hits >= 2 or canaries["shared"].hits or canaries["unknown"].hits,
            60,
            what="a scrape of a registered endpoint",
        )
        targets = {t["labels"]["instance"]: t["labels"] for t in prometheus.targets()}
        # before: the shared-name endpoint was scraped, labelled node=<n2>
        assert (canaries["shared"].hits, canaries["unknown"].hits) == (0, 0), targets
        assert canaries["shared"].addr not in targets and canaries["unknown"].addr not in targets
        own = targets[canaries["own"].addr]
        assert (own["component"], own["node"]) == ("agent", n1)  # from the name, whatever the meta says
    finally:
        prometheus.stop()
        for registration in registrations:
            master.deregister(registration.service_id)
