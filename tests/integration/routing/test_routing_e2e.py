"""End to end through real everything: client --HTTPS--> ``meshop gateway run`` (tls internal) --HTTP-->
a node's Caddy run by ``meshop agent run --caddy-dir`` --> a busybox httpd container the agent runs.

The three tests share one cluster (conftest.py): a controller, two agents on the one Docker engine
(different nodes, Caddy folders and ingress ports) and the gateway. /cgi-bin/env in the test image
prints the CGI environment, so every answer says which container (HOSTNAME) served it and which
X-Forwarded-* headers reached it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from meshop.client.nodes import set_node_mode
from meshop.model import keys
from tests.integration.routing.conftest import Cluster
from tests.integration.routing.helpers import (
    RequestLoop,
    env_of,
    httpd_spec,
    observed,
    route_of,
    service_doc,
)
from tests.support.procs import wait_until


def put_service(cluster: Cluster, name: str, host: str, **spec: Any) -> None:
    doc = service_doc(name, httpd_spec(route={"host": host, "port": "http"}, **spec))
    cluster.store.put(keys.desired_service(name), doc)


def delete_service(cluster: Cluster, docker_client: Any, name: str) -> None:
    cluster.store.delete(keys.desired_service(name))
    wait_until(
        lambda: (
            not any(
                docker_client.containers.list(
                    all=True, filters={"label": [f"meshop.node={n}", f"meshop.service={name}"]}
                )
                for n in cluster.nodes
            )
        ),
        30,
        what=f"the containers of {name} to go",
    )


def hostname_on(docker_client: Any, node: str, service: str) -> str | None:
    """The HOSTNAME of the running container of ``service`` on ``node`` (what /cgi-bin/env reports)."""
    running = docker_client.containers.list(filters={"label": [f"meshop.node={node}", f"meshop.service={service}"]})
    return running[0].attrs["Config"]["Hostname"] if len(running) == 1 else None


def gateway_env(cluster: Cluster, host: str) -> dict[str, str] | None:
    status, body = cluster.gateway.get(host, "/cgi-bin/env")
    return env_of(body) if status == 200 else None


def test_https_through_the_gateway_reaches_the_container_through_the_node_caddy(
    cluster: Cluster, docker_client: Any
) -> None:
    put_service(cluster, "hello", "hello.test")
    try:
        env = wait_until(lambda: gateway_env(cluster, "hello.test"), 30, what="the gateway to serve hello.test")
        assert isinstance(env, dict)
        route = route_of(cluster.store, "hello.test")
        assert route is not None and len(route.upstreams) == 1
        (upstream,) = route.upstreams
        agent = cluster.agents[upstream.node]
        assert (upstream.address, upstream.port) == ("127.0.0.1", agent.ingress_port)  # the node's Caddy
        assert env["HOSTNAME"] == hostname_on(docker_client, agent.name, "hello")
        # the gateway's X-Forwarded-* headers reach the container through the node's Caddy
        assert env["HTTP_HOST"] == "hello.test"
        assert env["HTTP_X_FORWARDED_PROTO"] == "https"
        assert env["HTTP_X_FORWARDED_FOR"].startswith("127.0.0.1")
        # the node's Caddy answers by itself too (DNS pointed at the node while the gateway is down)
        status, body = agent.get("hello.test", "/cgi-bin/env")
        assert status == 200 and env_of(body)["HOSTNAME"] == env["HOSTNAME"]
        # a host the node does not route: the connection is dropped (a gateway retries another node)
        with pytest.raises(OSError):
            agent.get("nobody.test")
    finally:
        delete_service(cluster, docker_client, "hello")


def test_drain_moves_the_route_within_five_seconds_and_no_request_fails(cluster: Cluster, docker_client: Any) -> None:
    put_service(cluster, "mover", "mover.test", update={"strategy": "start-first"})
    source = target = ""
    try:
        wait_until(lambda: gateway_env(cluster, "mover.test"), 30, what="the gateway to serve mover.test")
        route = route_of(cluster.store, "mover.test")
        assert route is not None
        source = route.upstreams[0].node
        target = next(n for n in cluster.nodes if n != source)
        old = hostname_on(docker_client, source, "mover")
        loads = cluster.gateway.loads()
        loop = RequestLoop(lambda: cluster.gateway.get("mover.test", "/cgi-bin/env", timeout=15)).start()
        try:
            loop.wait_more(20)
            set_node_mode(cluster.store, source, "drain")
            wait_until(
                lambda: (o := observed(cluster.store, target, "mover")) is not None and o.ready == 1,
                30,
                interval=0.01,
                what="the replacement to be healthy on the other node",
            )
            healthy_at = time.monotonic()
            new = hostname_on(docker_client, target, "mover")
            assert new and new != old
            wait_until(lambda: loop.served_by(new), 10, interval=0.01, what="the gateway to send traffic to the move")
            followed = min(t for t, _, h in loop.results if h == new) - healthy_at
            assert followed < 5.0, f"the gateway followed {followed:.2f}s after the new replica was healthy"
            wait_until(lambda: hostname_on(docker_client, source, "mover") is None, 30, what="the old copy removed")
            loop.wait_more(30)
        finally:
            loop.stop()
        assert loop.failures == [], loop.report()
        assert {h for _, _, h in loop.results} == {old, new}
        assert cluster.gateway.loads() == loads  # the upstream moved through DNS: no Caddy reload
    finally:
        if source:
            set_node_mode(cluster.store, source, "uncordon")
        delete_service(cluster, docker_client, "mover")


def test_a_killed_container_on_one_of_two_nodes_keeps_requests_succeeding(cluster: Cluster, docker_client: Any) -> None:
    """The survivor serves while the killed replica is away; the gateway sends traffic back once it returns.

    At most one request may fail, and only until the gateway uses the replica again: the one the container
    was answering when it was killed. The controller takes the node out of the route and back; the
    gateway follows through its DNS without reloading Caddy (which on 2.6.2 cancelled the retries of
    requests on the replaced config, docs/routing.md), so every GET is sent once.
    """
    put_service(cluster, "pair", "pair.test", replicas=2)
    try:
        wait_until(
            lambda: (
                all(hostname_on(docker_client, n, "pair") for n in cluster.nodes)
                and (r := route_of(cluster.store, "pair.test")) is not None
                and len(r.upstreams) == 2
            ),
            30,
            what="a ready replica of pair on each node, both in the route",
        )
        victim, survivor = cluster.nodes
        hostnames = {n: hostname_on(docker_client, n, "pair") for n in cluster.nodes}
        loads = cluster.gateway.loads()
        loop = RequestLoop(lambda: cluster.gateway.get("pair.test", "/cgi-bin/env", timeout=15)).start()
        try:
            wait_until(lambda: all(loop.served_by(h) for h in hostnames.values()), 20, what="both replicas serving")
            (container,) = docker_client.containers.list(
                filters={"label": [f"meshop.node={victim}", "meshop.service=pair"]}
            )
            started = container.attrs["State"]["StartedAt"]
            killed_at = time.monotonic()
            container.kill()

            def back() -> bool:
                running = docker_client.containers.list(
                    filters={"label": [f"meshop.node={victim}", "meshop.service=pair"]}
                )
                seen = observed(cluster.store, victim, "pair")
                return (
                    len(running) == 1
                    and (running[0].id != container.id or running[0].attrs["State"]["StartedAt"] != started)
                    and seen is not None
                    and seen.ready == 1
                )

            # the node's agent notices, and its Caddy routes to the container again once it is back
            wait_until(back, 30, what="the killed replica back and healthy")
            back_at = time.monotonic()
            returned = hostname_on(docker_client, victim, "pair") or ""
            wait_until(lambda: loop.served_by(returned, since=back_at), 20, what="the gateway to use it again")
            settled_at = time.monotonic()
            loop.wait_more(30)
        finally:
            loop.stop()
        assert loop.served_by(hostnames[survivor], since=killed_at)  # requests kept succeeding meanwhile
        assert len(loop.failures) <= 1, loop.report()
        assert all(killed_at <= end and start <= settled_at for start, end, _ in loop.failures), loop.report()
        assert cluster.gateway.loads() == loads
    finally:
        delete_service(cluster, docker_client, "pair")
