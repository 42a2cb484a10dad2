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
The Gateway document's dashboard host (``spec.dashboard.host``) is nobody's: the operator's document
wins over every service, so a service cannot put a page where people type their dashboard password;
a claimant is told so (``RouteConflict``) and gets no record.

Consul's own view of the replicas (``replicas.ReplicaHealth``) comes first where the agent cannot be
trusted, because it does not wait for any agent: a node whose machine is gone (``serfHealth`` critical)
is no upstream, whatever its agent last reported and however long the grace period; nor is a node whose
agent is unhealthy (Suspect or NotReady) while its replicas of the service all fail their Consul checks.
While a node's agent is healthy its own probes (faster than Consul's check interval, and they decide
when a new replica is Ready) stay authoritative.

**Fail open:** when that leaves a route no upstream *only* because nodes are NotReady (their agents
are unhealthy: hung, cut off, restarting) while their replicas still pass their Consul checks,
those nodes stay upstreams and the record says ``failOpen`` — as Envoy routes to every host once too few
are healthy (its panic threshold), rather than answer 503 for containers that serve fine.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshop.model.addresses import port_problem
from meshop.model.names import host_in_domain
from meshop.model.records import Assignment, ContainerState, Observed, RouteRecord, Upstream
from meshop.operator.replicas import CRITICAL, DEAD, PASSING, ReplicaHealth
from meshop.operator.view import DesiredService, NodeState, NodeView

READY_HEALTH = ("passing", "none")


def container_ready(container: ContainerState) -> bool:
    return container.state == "running" and container.health in READY_HEALTH


def upstreams(
    service: DesiredService,
    assignments: Mapping[str, Assignment],
    observed: Mapping[str, Observed],
    nodes: Mapping[str, NodeView],
    health: ReplicaHealth | None = None,
) -> tuple[tuple[Upstream, ...], bool]:
    """The route's upstreams, and whether they are kept only by failing open (see the module docstring)."""
    if service.route is None:
        return (), False
    health = health or ReplicaHealth()
    found: dict[tuple[str, int], Upstream] = {}
    kept: dict[tuple[str, int], Upstream] = {}  # NotReady nodes whose replicas pass their Consul checks
    for node in sorted(assignments):
        view, seen = nodes.get(node), observed.get(node)
        if view is None or seen is None or not view.address:
            continue
        state = health.state(service.name, node)
        if state == DEAD or (state == CRITICAL and view.state is not NodeState.READY):
            continue  # a dead machine; or failing checks where the agent's own report cannot be trusted
        target = found
        if view.state is NodeState.NOT_READY:
            if state != PASSING:
                continue
            target = kept
        target.update(_node_upstreams(service, node, view, seen))
    chosen, fail_open = (found, False) if found or not kept else (kept, True)
    return tuple(sorted(chosen.values(), key=lambda u: (u.node, u.port, u.address))), fail_open


def _node_upstreams(
    service: DesiredService, node: str, view: NodeView, seen: Observed
) -> dict[tuple[str, int], Upstream]:
    assert service.route is not None
    ready = [c for c in seen.containers if container_ready(c)]
    if view.ingress_port > 0:
        if ready or (seen.ready > 0 and not seen.containers):
            return {(view.address, view.ingress_port): Upstream(node, view.address, view.ingress_port, True)}
        return {}
    port_key = f"{service.route.port}/tcp"
    found = {}
    for container in ready:
        port = container.host_ports.get(port_key)
        if port and port_problem(port) is None:
            found[(view.address, port)] = Upstream(node, view.address, port, True)
    return found


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


def dashboard_message(host: str) -> str:
    return (
        f"host {host} is the dashboard's (the Gateway document's spec.dashboard.host): the gateway serves "
        "the dashboard there, never a service"
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
    health: ReplicaHealth | None = None,
    previous: Mapping[str, RouteRecord] | None = None,
    domains: tuple[str, ...] = (),
    reserved: str = "",
) -> tuple[dict[str, RouteRecord], dict[str, tuple[str, str]]]:
    """Every route record by host, and the services whose route is not served (-> reason, why):
    ``RouteConflict`` (another service owns the host, or it is the dashboard's: ``reserved``) or
    ``OutsideDomains``."""
    problems: dict[str, tuple[str, str]] = {}
    if reserved:
        taken = {n for n, s in services.items() if s.route is not None and s.route.host == reserved}
        problems.update((n, ("RouteConflict", dashboard_message(reserved))) for n in taken)
        services = {n: s for n, s in services.items() if n not in taken}
    owners = host_owners(services, previous)
    routes: dict[str, RouteRecord] = {}
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
        found, fail_open = upstreams(service, assignments.get(name, {}), observed.get(name, {}), nodes, health)
        routes[host] = RouteRecord(
            host=host,
            service=name,
            path=service.route.path,
            health_path=service.route.health_path,
            upstreams=found,
            fail_open=fail_open,
        )
    return routes, problems


def fail_open_note(route: RouteRecord) -> str:
    """What status says about a route kept only by failing open ("" when it is not)."""
    if not route.fail_open:
        return ""
    names = ", ".join(sorted({u.node for u in route.upstreams}))
    return (
        f"route {route.host} keeps its last upstreams ({names}): their nodes are NotReady (agent unhealthy) "
        "but the replicas pass their Consul checks"
    )
