"""Small builders for the controller's planner tests (no Consul, no YAML)."""

from __future__ import annotations

from meshop.errors import Violation
from meshop.model.records import Assignment, ContainerState, Observed
from meshop.operator.view import DesiredService, NodeState, NodeView, RouteSpec, Workload


def node(name: str, state: NodeState = NodeState.READY, **kw: object) -> NodeView:
    kw.setdefault("address", f"10.0.0.{name[-1]}" if name[-1].isdigit() else "10.0.0.99")
    return NodeView(name, state, **kw)  # type: ignore[arg-type]


def service(
    name: str,
    generation: int = 10,
    *,
    image: str = "img:1",
    route: RouteSpec | None = None,
    violations: tuple[Violation, ...] = (),
    **workload: object,
) -> DesiredService:
    w = Workload(name, **workload)  # type: ignore[arg-type]
    spec = {"image": image, "replicas": w.replicas, "note": f"gen{generation}"}
    return DesiredService(
        name=name,
        generation=generation,
        violations=violations,
        workload=w,
        spec=spec,
        spec_hash=f"{image}-{w.replicas}-{generation}",
        image=image,
        route=route,
    )


def invalid(
    name: str, generation: int, *violations: Violation, running: DesiredService | None = None
) -> DesiredService:
    if running is None:
        return DesiredService(name, generation, violations=violations)
    return DesiredService(
        name=name,
        generation=generation,
        violations=violations,
        workload=running.workload,
        spec=running.spec,
        spec_hash=running.spec_hash,
        image=running.image,
        route=running.route,
    )


def assignment(svc: DesiredService, node_name: str, replicas: int = 1) -> Assignment:
    return Assignment(svc.name, node_name, replicas, svc.generation, svc.spec_hash, dict(svc.spec))


def observed(
    a: Assignment,
    ready: int | None = None,
    *,
    reason: str = "",
    error: str = "",
    health: str = "passing",
    port: int = 32768,
    spec_hash: str | None = None,
) -> Observed:
    ready = a.replicas if ready is None else ready
    containers = tuple(
        ContainerState(
            id=f"c{i}",
            name=f"{a.service}-{i}",
            replica=i,
            image="img",
            state="running",
            health=health if i < ready else "critical",
            spec_hash=a.spec_hash,
            host_ports={"80/tcp": port + i},
        )
        for i in range(a.replicas)
    )
    return Observed(
        service=a.service,
        node=a.node,
        spec_hash=a.spec_hash if spec_hash is None else spec_hash,
        generation=a.generation,
        ready=ready,
        containers=containers,
        reason=reason,
        error=error,
    )
