"""The controller's plain view of the world: what placement, status and routes are computed from.

These frozen types are deliberately smaller than the model's documents: a ``Workload`` is the part of a
Service spec that placement cares about, a ``NodeView`` is one node as the controller sees it (agent
record + the user's Node document + readiness). ``meshop.operator.desired`` builds them from KV; the
planners (``placement``, ``status``, ``routes``, ``plan``) take nothing else, so their tables need no
Consul and no YAML.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshop.errors import Violation


class NodeState(enum.Enum):
    """READY takes new work; SUSPECT (unhealthy, still within the grace period) keeps what it has but gets
    nothing new; NOT_READY (unhealthy for longer than the grace period) loses its movable work."""

    READY = "Ready"
    SUSPECT = "Suspect"
    NOT_READY = "NotReady"


@dataclass(frozen=True)
class NodeView:
    """One node: agent-reported facts merged with the user's ``desired/nodes/<name>`` document.

    A capacity of 0 means the agent did not report that dimension: it is then not limited.
    """

    name: str
    state: NodeState = NodeState.READY
    address: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    memory: int = 0  # bytes
    cpus: float = 0.0
    cordon: bool = False
    drain: bool = False
    allow_privileged: bool = False
    allow_host_network: bool = False
    allow_bind_mounts: bool = False
    ingress_port: int = 0
    unhealthy_since: float | None = None  # wall clock: when first seen unhealthy (for ``status/nodes`` only)
    problem: str = ""  # why it is unhealthy


@dataclass(frozen=True)
class Workload:
    """What placement needs from a Service spec."""

    name: str
    replicas: int = 1
    node: str | None = None  # pinned
    node_selector: Mapping[str, str] = field(default_factory=dict)
    spread: bool = True  # at most one replica per node
    group: str | None = None  # services of one group share one node
    memory: int = 0  # bytes requested per replica
    cpus: float = 0.0  # per replica
    privileged: bool = False
    host_network: bool = False
    bind_mounts: bool = False
    host_ports: frozenset[str] = frozenset()  # "8080/tcp": fixed host ports a replica binds
    rebalance: str | None = None  # off | manual | auto; None: the controller's cluster-wide default
    failover: str | None = None  # a stateful service's spec.failover (none | restore-latest); None: not stateful
    home: str | None = None  # a stateful service: the node its volume lock last named (where its data is)
    relocate: str | None = None  # a stateful service moved by `meshop volume restore --to-node`: only there

    @property
    def stateful(self) -> bool:
        """Has a stateful volume: never rebalanced (its data stays where it is); ``failover`` says more."""
        return self.failover is not None


@dataclass(frozen=True)
class RouteSpec:
    host: str
    path: str = "/"
    port: int = 80  # the container port the route targets
    health_path: str = ""  # the service's HTTP health path when the route serves it (gateway active checks)


@dataclass(frozen=True)
class DesiredService:
    """One ``desired/services/<name>`` document after validation.

    ``generation`` is the document's ModifyIndex. A valid document fills ``workload``, ``spec`` (the
    model's ``ServiceSpec.to_dict()``), ``spec_hash``, ``image`` and ``route``. An invalid one carries its
    ``violations``; its other fields then describe the last valid version still running (read back from
    its assignments), or stay empty when nothing ever ran.
    """

    name: str
    generation: int
    violations: tuple[Violation, ...] = ()
    workload: Workload | None = None
    spec: Mapping[str, Any] = field(default_factory=dict)
    spec_hash: str = ""
    image: str = ""
    route: RouteSpec | None = None
    created: int = 0  # the document's CreateIndex: who claimed a route host first (0: unknown)

    @property
    def valid(self) -> bool:
        return not self.violations

    @property
    def replicas(self) -> int:
        return self.workload.replicas if self.workload else 0
