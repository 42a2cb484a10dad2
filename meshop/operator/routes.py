"""Routes: ``routes/<host>`` for every service with a route, listing its healthy upstreams. Pure.

An upstream is a node that runs a Ready copy of the service (a running container whose health check
passes, or that has none) and is not NotReady. Its address is the node record's; its port is the node's
local Caddy (``ingressPort``) when the node runs one, else each ready container's published host port for
the route's container port. One host belongs to one service: the first by name keeps it, the others are
told in their status.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshop.model.records import Assignment, ContainerState, Observed, RouteRecord, Upstream
from meshop.operator.view import DesiredService, NodeState, NodeView

READY_HEALTH = ("passing", "none")


def container_ready(container: ContainerState) -> bool:
    return container.state == "running" and container.health in READY_HEALTH


def upstreams(
    service: DesiredService,
    assignments: Mapping[str, Assignment],
    observed: Mapping[str, Observed],
    nodes: Mapping[str, NodeView],
) -> tuple[Upstream, ...]:
    if service.route is None:
        return ()
    port_key = f"{service.route.port}/tcp"
    found: dict[tuple[str, int], Upstream] = {}
    for node in sorted(assignments):
        view, seen = nodes.get(node), observed.get(node)
        if view is None or seen is None or view.state is NodeState.NOT_READY or not view.address:
            continue
        ready = [c for c in seen.containers if container_ready(c)]
        if view.ingress_port > 0:
            if ready or (seen.ready > 0 and not seen.containers):
                found[(view.address, view.ingress_port)] = Upstream(node, view.address, view.ingress_port, True)
            continue
        for container in ready:
            port = container.host_ports.get(port_key)
            if port:
                found[(view.address, port)] = Upstream(node, view.address, port, True)
    return tuple(sorted(found.values(), key=lambda u: (u.node, u.port, u.address)))


def build_routes(
    services: Mapping[str, DesiredService],
    assignments: Mapping[str, Mapping[str, Assignment]],
    observed: Mapping[str, Mapping[str, Observed]],
    nodes: Mapping[str, NodeView],
) -> tuple[dict[str, RouteRecord], dict[str, str]]:
    """Every route record by host, and the services whose host another service already has (-> why)."""
    routes: dict[str, RouteRecord] = {}
    conflicts: dict[str, str] = {}
    for name in sorted(services):
        service = services[name]
        if service.route is None:
            continue
        host = service.route.host
        if host in routes:
            conflicts[name] = f"host {host} is already routed to service {routes[host].service}"
            continue
        routes[host] = RouteRecord(
            host=host,
            service=name,
            path=service.route.path,
            health_path=service.route.health_path,
            upstreams=upstreams(service, assignments.get(name, {}), observed.get(name, {}), nodes),
        )
    return routes, conflicts
