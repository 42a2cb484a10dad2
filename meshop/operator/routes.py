"""Routes: ``routes/<host>`` for every service with a route, listing its healthy upstreams. Pure.

An upstream is a node that runs a Ready copy of the service (a running container whose health check
passes, or that has none) and is not NotReady. Its address is the node record's; its port is the node's
local Caddy (``ingressPort``) when the node runs one, else each ready container's published host port for
the route's container port. Ports and addresses come from agents, so each is checked before use (an
address is already vetted in the node's view; a host port must be 1-65535).

A host is owned: it belongs to the service whose route record holds it (the record is the persisted claim,
so ownership survives controller restarts and failover) for as long as that service exists and still
routes that host; a later claimant is told who owns it (``RouteConflict``) and gets no record. A host no
record holds goes to the claimant whose document was created first (Consul's CreateIndex), then by name.
A route host outside the Gateway document's domains is reported too (the gateway does not serve it).
"""

from __future__ import annotations

from collections.abc import Mapping

from meshop.model.addresses import port_problem
from meshop.model.names import host_in_domain
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
            if port and port_problem(port) is None:
                found[(view.address, port)] = Upstream(node, view.address, port, True)
    return tuple(sorted(found.values(), key=lambda u: (u.node, u.port, u.address)))


def host_owners(
    services: Mapping[str, DesiredService], previous: Mapping[str, RouteRecord] | None = None
) -> dict[str, str]:
    """host -> the service that owns it: the one its route record names while that service still routes
    the host, else the claimant created first (CreateIndex, then name)."""
    claimants: dict[str, list[DesiredService]] = {}
    for service in services.values():
        if service.route is not None:
            claimants.setdefault(service.route.host, []).append(service)
    owners = {}
    for host, claiming in claimants.items():
        held = (previous or {}).get(host)
        names = {s.name for s in claiming}
        if held is not None and held.service in names:
            owners[host] = held.service
        else:
            owners[host] = min(claiming, key=lambda s: (s.created or float("inf"), s.name)).name
    return owners


def conflict_message(host: str, owner: str) -> str:
    return (
        f"host {host} belongs to service {owner}, which claimed it first; it stays {owner}'s until {owner} "
        "is deleted or routes another host"
    )


def outside_message(host: str, domains: tuple[str, ...]) -> str:
    return (
        f"host {host} is outside the Gateway document's domains ({', '.join(domains)}): the gateway does not serve it"
    )


def build_routes(
    services: Mapping[str, DesiredService],
    assignments: Mapping[str, Mapping[str, Assignment]],
    observed: Mapping[str, Mapping[str, Observed]],
    nodes: Mapping[str, NodeView],
    previous: Mapping[str, RouteRecord] | None = None,
    domains: tuple[str, ...] = (),
) -> tuple[dict[str, RouteRecord], dict[str, tuple[str, str]]]:
    """Every route record by host, and the services whose route is not served (-> reason, why):
    ``RouteConflict`` (another service owns the host) or ``OutsideDomains``."""
    owners = host_owners(services, previous)
    routes: dict[str, RouteRecord] = {}
    problems: dict[str, tuple[str, str]] = {}
    for name in sorted(services):
        service = services[name]
        if service.route is None:
            continue
        host = service.route.host
        if owners[host] != name:
            problems[name] = ("RouteConflict", conflict_message(host, owners[host]))
            continue
        if domains and not any(host_in_domain(host, d) for d in domains):
            problems[name] = ("OutsideDomains", outside_message(host, domains))
        routes[host] = RouteRecord(
            host=host,
            service=name,
            path=service.route.path,
            health_path=service.route.health_path,
            upstreams=upstreams(service, assignments.get(name, {}), observed.get(name, {}), nodes),
        )
    return routes, problems
